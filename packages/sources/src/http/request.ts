import { Readable } from 'node:stream';
import { ImageCacheError, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import type { Client, Dispatcher } from 'undici';
import type { Dispatchers } from './dispatchers';

/** Body bytes the reader may buffer before the socket is paused. */
export const BODY_HIGH_WATER_MARK = 4 << 20;
/** Error and redirect bodies are read through (keeping the connection) up to this size, else dropped. */
const DISCARD_LIMIT = 64 << 10;

export type Headers = Record<string, string | string[] | undefined>;

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'DELETE';

export interface HttpResponse {
  status: number;
  statusText: string;
  /** Header names in lower case. */
  headers: Headers;
  /** The URL that answered (credentials removed). */
  url: URL;
  /** The body of a 2xx answer to a streaming request; other bodies are discarded. */
  body?: HttpBodyStream;
  /** The whole body of a request made with `collect` (any status; cut at `collect` bytes for an error status). */
  data?: Buffer;
}

/** What an error message says about the request: `GET http://h/x.img`, timeouts for wording. */
export interface RequestContext {
  /** The redacted href, for error details. */
  safeHref: string;
  inactivityTimeoutMs: number;
  connectTimeoutMs: number;
}

export interface SendParams {
  dispatchers: Dispatchers;
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  /** A request body (POST), sent as it is. */
  body?: string;
  signal?: AbortSignal;
  /** GET for a body: a connection of its own, a stream for a 2xx answer. */
  stream: boolean;
  /**
   * Read the whole (small) body of any answer into `HttpResponse.data`, at most this many bytes: a 2xx answer
   * that is longer fails (not retryable); a longer error body is cut. Not with `stream`.
   */
  collect?: number;
  /** The request URL as messages may show it (credentials and secret query values removed). */
  label: string;
  ctx: RequestContext;
}

/**
 * Sends one request (no redirect following). Resolves when the response headers arrive; rejects with a typed
 * error on network failures, timeouts and aborts.
 */
export function send(p: SendParams): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    const exchange = new Exchange(p, resolve, reject);
    exchange.start();
  });
}

type State = 'waiting' | 'streaming' | 'collecting' | 'discarding' | 'done';

/** One request/response, written against undici's dispatch handler API (no extra stream layer per chunk). */
class Exchange implements Dispatcher.DispatchHandler {
  private state: State = 'waiting';
  private controller?: Dispatcher.DispatchController;
  private body?: HttpBodyStream;
  private client?: Client;
  /** The error the dedicated connection closed with, if any (bytes past the end of the body). */
  private socketError?: Error & { code?: string };
  private signal?: AbortSignal;
  /** Why the exchange was ended from this side (abort, timeout); given to undici when it starts late. */
  private cancelReason?: ImageCacheError;
  private timer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private discarded = 0;
  private waitingForClose = false;
  private expected?: number;
  /** A response being read whole (`collect`), and its chunks so far. */
  private collected?: { res: HttpResponse; chunks: Buffer[]; bytes: number };
  private readonly onAbort = () => this.abort();

  constructor(
    private readonly p: SendParams,
    private readonly resolve: (r: HttpResponse) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  start(): void {
    const { p } = this;
    if (p.signal?.aborted) {
      this.state = 'done';
      this.reject(this.abortError());
      return;
    }
    this.bindSignal(p.signal);
    let dispatcher: Dispatcher = p.dispatchers.agent;
    if (p.stream) {
      const client = p.dispatchers.client(p.url.origin);
      client.on('disconnect', (_origin, _targets, err) => {
        this.socketError ??= err as Error & { code?: string };
        if (this.waitingForClose) this.decideEnd();
      });
      this.client = client;
      dispatcher = client;
    }
    try {
      dispatcher.dispatch(
        {
          origin: p.url.origin,
          path: `${p.url.pathname}${p.url.search}`,
          method: p.method,
          headers: p.headers,
          ...(p.body !== undefined ? { body: p.body } : {}),
          // undici closes the connection after every HEAD unless told not to; a warm cache hit is one HEAD.
          ...(p.method === 'HEAD' ? { reset: false } : {}),
        },
        this,
      );
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Follows another AbortSignal from now on (a response kept by show() and handed to open()). */
  bindSignal(signal: AbortSignal | undefined): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = signal;
    if (!signal || this.state === 'done') return;
    if (signal.aborted) this.abort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancelReason) {
      controller.abort(this.cancelReason);
      return;
    }
    // Connected and sent: no byte of an answer for inactivityTimeoutMs is a timeout. undici has the same
    // timeouts, but with a resolution of about a second; these are exact.
    clearTimeout(this.timer);
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (limit > 0) this.timer = setTimeout(() => this.timeOut('UND_ERR_HEADERS_TIMEOUT'), limit);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    if (statusCode < 200 || this.state !== 'waiting') return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const res: HttpResponse = {
      status: statusCode,
      statusText: statusMessage ?? '',
      headers,
      url: this.p.url,
    };
    const len = contentLength(headers);
    if (this.p.collect !== undefined && !this.p.stream && this.p.method !== 'HEAD') {
      this.state = 'collecting';
      this.collected = { res, chunks: [], bytes: 0 };
      this.armBodyTimer();
      return;
    }
    if (this.p.stream && statusCode >= 200 && statusCode < 300) {
      this.state = 'streaming';
      this.expected = len;
      // Nothing is read until the consumer asks: a response kept by show() costs no bandwidth.
      controller.pause();
      this.body = new HttpBodyStream(this);
      res.body = this.body;
      this.watchInactivity();
    } else {
      this.state = 'discarding';
      if (this.p.method !== 'HEAD' && (len === undefined || len > DISCARD_LIMIT)) {
        this.dropConnection(controller);
      }
    }
    this.resolve(res);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const body = this.body;
    if (this.state === 'streaming' && body) {
      body.bytes += chunk.length;
      if (!body.push(chunk)) controller.pause();
    } else if (this.state === 'collecting' && this.collected) {
      const c = this.collected;
      const limit = this.p.collect ?? 0;
      if (c.bytes + chunk.length > limit) {
        if (c.res.status >= 200 && c.res.status < 300) {
          this.cancel(
            new ImageDownloadFailed(`${this.p.method} ${this.p.label}: answer longer than ${limit} bytes`, {
              href: this.p.ctx.safeHref,
              retryable: false,
            }),
          );
          return;
        }
        c.chunks.push(chunk.subarray(0, limit - c.bytes));
        c.bytes = limit;
        this.resolveCollected();
        this.dropConnection(controller);
        return;
      }
      c.chunks.push(chunk);
      c.bytes += chunk.length;
      this.armBodyTimer();
    } else if (this.state === 'discarding') {
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_LIMIT) this.dropConnection(controller);
    }
  }

  onResponseEnd(): void {
    if (this.state === 'collecting') {
      this.resolveCollected();
      this.state = 'done';
      this.finish();
      return;
    }
    const body = this.body;
    if (this.state !== 'streaming' || !body) {
      this.finish();
      return;
    }
    if (this.expected !== undefined && body.bytes !== this.expected) {
      this.failBody(this.shortBody(body.bytes));
      return;
    }
    // A server that sends more bytes than its Content-Length: undici ends the body at Content-Length and the
    // extra bytes break the connection right after ("bad response"), in the same socket read. Once this call
    // stack is over, a connection still up saw no extra byte; a broken one reports why when it closes.
    process.nextTick(() => this.afterEnd());
  }

  private afterEnd(): void {
    if (this.state !== 'streaming') return;
    if (this.socketError === undefined && this.client?.stats.connected) {
      this.endBody();
      return;
    }
    if (this.socketError === undefined) {
      // Closed, but the reason is not known yet: 'disconnect' comes once the socket is closed.
      this.waitingForClose = true;
      setTimeout(() => this.decideEnd(), 1000).unref();
      return;
    }
    this.decideEnd();
  }

  private decideEnd(): void {
    if (this.state !== 'streaming') return;
    this.waitingForClose = false;
    const e = this.socketError;
    if (e && (e.code?.startsWith('HPE_') || /bad response/i.test(e.message))) {
      this.failBody(
        new ImageDownloadFailed(
          `${this.p.method} ${this.p.label}: the server sent more bytes than its Content-Length ${this.expected ?? ''}`.trimEnd(),
          { href: this.p.ctx.safeHref, retryable: false },
        ),
      );
      return;
    }
    this.endBody();
  }

  private endBody(): void {
    this.state = 'done';
    this.body?.push(null);
    this.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }

  private resolveCollected(): void {
    const c = this.collected;
    if (!c) return;
    this.collected = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.resolve({ ...c.res, data: Buffer.concat(c.chunks, c.bytes) });
  }

  /** (Re)starts the inactivity timer of a body being collected. */
  private armBodyTimer(): void {
    clearTimeout(this.timer);
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (limit > 0) this.timer = setTimeout(() => this.timeOut('UND_ERR_BODY_TIMEOUT'), limit);
  }

  /** The reader destroyed the body (error, early exit): stop the transfer. */
  bodyDestroyed(err: Error | null): void {
    if (this.state === 'done') return;
    this.state = 'done';
    const reason = err ?? new OperationAborted(`${this.p.method} ${this.p.label}: closed by the reader`);
    this.finish();
    this.controller?.abort(reason);
  }

  /** The consumer wants bytes. */
  resume(): void {
    this.controller?.resume();
  }

  private fail(err: Error): void {
    const state = this.state;
    if (state === 'done') return;
    if (state === 'waiting' || state === 'collecting') {
      this.state = 'done';
      this.finish();
      this.reject(this.mapError(err));
    } else if (state === 'streaming') {
      this.failBody(this.mapError(err));
    } else {
      this.state = 'done';
      this.finish();
    }
  }

  private failBody(err: Error): void {
    this.state = 'done';
    this.finish();
    this.body?.destroy(err);
  }

  private abort(): void {
    this.cancel(this.abortError());
  }

  /** Ends the exchange with `reason`, whatever its state. */
  private cancel(reason: ImageCacheError): void {
    if (this.state === 'done') return;
    this.cancelReason = reason;
    const state = this.state;
    this.state = 'done';
    this.finish();
    if (state === 'waiting' || state === 'collecting') this.reject(reason);
    if (state === 'streaming') this.body?.destroy(reason);
    this.controller?.abort(reason);
  }

  private timeOut(code: 'UND_ERR_HEADERS_TIMEOUT' | 'UND_ERR_BODY_TIMEOUT'): void {
    this.cancel(this.mapError(Object.assign(new Error(code), { code })));
  }

  /**
   * The body's inactivity timeout, checked a few times per period against the byte count (nothing added per
   * chunk). Time spent paused because the reader is behind does not count.
   */
  private watchInactivity(): void {
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (!(limit > 0)) return;
    const period = Math.min(1000, Math.max(10, Math.floor(limit / 8)));
    let seen = -1;
    let since = Date.now();
    this.watchdog = setInterval(() => {
      const body = this.body;
      if (this.state !== 'streaming' || !body) return this.finish();
      const now = Date.now();
      if (this.controller?.paused || body.bytes !== seen) {
        seen = body.bytes;
        since = now;
      } else if (now - since >= limit) {
        this.timeOut('UND_ERR_BODY_TIMEOUT');
      }
    }, period);
    this.watchdog.unref();
  }

  private dropConnection(controller: Dispatcher.DispatchController): void {
    this.state = 'done';
    this.finish();
    controller.abort(new Error('response body not needed'));
  }

  /** Releases the signal listener and the dedicated connection. Idempotent. */
  private finish(): void {
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    this.timer = this.watchdog = undefined;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = undefined;
    const client = this.client;
    this.client = undefined;
    client?.destroy().catch(() => undefined);
  }

  private abortError(): OperationAborted {
    return new OperationAborted(`${this.p.method} ${this.p.label}: aborted`, { href: this.p.ctx.safeHref });
  }

  private shortBody(got: number): ImageDownloadFailed {
    return new ImageDownloadFailed(
      `${this.p.method} ${this.p.label}: connection closed after ${got} of ${this.expected} bytes`,
      { href: this.p.ctx.safeHref, retryable: true, bytes: got, expected: this.expected },
    );
  }

  private mapError(err: Error & { code?: string }): ImageCacheError {
    if (err instanceof ImageCacheError) return err;
    if (this.cancelReason) return this.cancelReason;
    const { ctx } = this.p;
    const what = `${this.p.method} ${this.p.label}`;
    const details = { href: ctx.safeHref, cause: err, reason: err.code ?? err.name };
    const code = err.code ?? '';
    const got = this.body?.bytes;
    switch (code) {
      case 'UND_ERR_BODY_TIMEOUT':
        return new ImageDownloadFailed(
          `${what}: no data for ${ctx.inactivityTimeoutMs} ms (inactivity timeout)`,
          details,
        );
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new ImageDownloadFailed(
          `${what}: no answer for ${ctx.inactivityTimeoutMs} ms (inactivity timeout)`,
          details,
        );
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new ImageDownloadFailed(
          `${what}: could not connect within ${ctx.connectTimeoutMs} ms`,
          details,
        );
      case 'ECONNREFUSED':
        return new ImageDownloadFailed(`${what}: connection refused`, details);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new ImageDownloadFailed(`${what}: cannot resolve the host name (${code})`, details);
    }
    if (isTlsError(code)) {
      // A certificate or protocol mismatch is a configuration problem: retrying won't fix it.
      return new ImageDownloadFailed(`${what}: TLS failure (${code}): ${err.message}`, {
        ...details,
        retryable: false,
      });
    }
    if (this.state === 'streaming' && got !== undefined) {
      return this.expected !== undefined
        ? this.shortBody(got)
        : new ImageDownloadFailed(
            `${what}: connection failed after ${got} bytes (${code || err.message})`,
            details,
          );
    }
    return new ImageDownloadFailed(`${what}: ${err.message}${code ? ` (${code})` : ''}`, details);
  }
}

function isTlsError(code: string): boolean {
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY|DECRYPT)|^DEPTH_ZERO/.test(code)
  );
}

/** The body of one response: a plain Readable fed by the socket, paused when its buffer is full. */
export class HttpBodyStream extends Readable {
  /** Bytes received so far. */
  bytes = 0;

  constructor(private readonly exchange: Exchange) {
    super({ highWaterMark: BODY_HIGH_WATER_MARK });
  }

  /** Makes this body follow `signal` instead of the one it was requested with. */
  rebind(signal: AbortSignal | undefined): void {
    this.exchange.bindSignal(signal);
  }

  override _read(): void {
    this.exchange.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.exchange.bodyDestroyed(err);
    cb(err);
  }
}

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

export function contentLength(headers: Headers): number | undefined {
  const v = header(headers, 'content-length')?.trim();
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}
