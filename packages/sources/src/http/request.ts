import { ImageCacheError, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import type { Dispatcher } from 'undici';
import type { HttpBodyStream } from './body-stream';
import type { Dispatchers } from './dispatchers';
import { DownloadExchange } from './download-exchange';
import { HeadExchange } from './head-exchange';
import type { ResolvedHttpOptions } from '../options';
import type { PinnedAddress, RedirectPolicy } from './redirect-policy';
import { networkError } from './transfer-errors';

export { BODY_HIGH_WATER_MARK, HttpBodyStream } from './body-stream';
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
  /** A body slower than this over `minRateWindowMs` fails (0 or absent: no minimum). */
  minRateBytesPerSec?: number;
  minRateWindowMs?: number;
  /** Where redirects may lead (absent: anywhere http(s)). */
  redirects?: RedirectPolicy;
}

/** The request context of one option set. */
export function contextFor(safeHref: string, http: ResolvedHttpOptions): RequestContext {
  return {
    safeHref,
    inactivityTimeoutMs: http.inactivityTimeoutMs,
    connectTimeoutMs: http.connectTimeoutMs,
    minRateBytesPerSec: http.minRateBytesPerSec,
    minRateWindowMs: http.minRateWindowMs,
    redirects: http.redirects,
  };
}

export interface SendParams {
  dispatchers: Dispatchers;
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  /** A request body (POST), sent as it is. */
  body?: string;
  signal?: AbortSignal;
  /** GET for a body: a connection of its own read by our receive path, a stream for a 2xx answer. */
  stream: boolean;
  /**
   * Read the whole (small) body of any answer into `HttpResponse.data`, at most this many bytes: a 2xx answer
   * that is longer fails (not retryable); a longer error body is cut. Not with `stream`.
   */
  collect?: number;
  /** The request URL as messages may show it (credentials and secret query values removed). */
  label: string;
  /** Connect to this address (a checked redirect target), whatever the host name resolves to now. */
  pin?: PinnedAddress;
  ctx: RequestContext;
}

/**
 * Sends one request (no redirect following). Resolves when the response headers arrive; rejects with a typed
 * error on network failures, timeouts and aborts.
 */
export function send(p: SendParams): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    if (p.stream) new DownloadExchange(p, resolve, reject).start();
    else if (p.method === 'HEAD') new HeadExchange(p, resolve, reject).start();
    else new Exchange(p, resolve, reject).start();
  });
}

type State = 'waiting' | 'collecting' | 'discarding' | 'done';

/**
 * One request/response without a streamed body (small JSON answers, POSTs), on the shared keep-alive agent,
 * written against undici's dispatch handler API. It never pauses undici's parser (bodies are collected or
 * discarded as they come): a paused parser meeting the server's FIN is what can crash undici 7 (nodejs/undici#5360).
 */
class Exchange implements Dispatcher.DispatchHandler {
  private state: State = 'waiting';
  private controller?: Dispatcher.DispatchController;
  /** Why the exchange was ended from this side (abort, timeout); given to undici when it starts late. */
  private cancelReason?: ImageCacheError;
  private timer?: NodeJS.Timeout;
  private discarded = 0;
  /** A response being read whole (`collect`), and its chunks so far. */
  private collected?: { res: HttpResponse; chunks: Buffer[]; bytes: number };
  private readonly onAbort = () => this.cancel(this.abortError());

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
    p.signal?.addEventListener('abort', this.onAbort, { once: true });
    try {
      (p.pin ? p.dispatchers.pinned(p.pin) : p.dispatchers.agent).dispatch(
        {
          origin: p.url.origin,
          path: `${p.url.pathname}${p.url.search}`,
          method: p.method,
          headers: p.headers,
          ...(p.body !== undefined ? { body: p.body } : {}),
        },
        this,
      );
    } catch (err) {
      this.fail(err as Error);
    }
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
    if (this.p.collect !== undefined) {
      this.state = 'collecting';
      this.collected = { res, chunks: [], bytes: 0 };
      this.armBodyTimer();
      return;
    }
    this.state = 'discarding';
    if (len === undefined || len > DISCARD_LIMIT) {
      this.dropConnection(controller);
    }
    this.resolve(res);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state === 'collecting' && this.collected) {
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
    if (this.state === 'collecting') this.resolveCollected();
    this.state = 'done';
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

  private fail(err: Error): void {
    const state = this.state;
    if (state === 'done') return;
    this.state = 'done';
    this.finish();
    if (state === 'waiting' || state === 'collecting') this.reject(this.mapError(err));
  }

  /** Ends the exchange with `reason`, whatever its state. */
  private cancel(reason: ImageCacheError): void {
    if (this.state === 'done') return;
    this.cancelReason = reason;
    const state = this.state;
    this.state = 'done';
    this.finish();
    if (state === 'waiting' || state === 'collecting') this.reject(reason);
    this.controller?.abort(reason);
  }

  private timeOut(code: 'UND_ERR_HEADERS_TIMEOUT' | 'UND_ERR_BODY_TIMEOUT'): void {
    this.cancel(this.mapError(Object.assign(new Error(code), { code })));
  }

  private dropConnection(controller: Dispatcher.DispatchController): void {
    this.state = 'done';
    this.finish();
    controller.abort(new Error('response body not needed'));
  }

  /** Releases the timer and the signal listener. Idempotent. */
  private finish(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.p.signal?.removeEventListener('abort', this.onAbort);
  }

  private abortError(): OperationAborted {
    return new OperationAborted(`${this.p.method} ${this.p.label}: aborted`, { href: this.p.ctx.safeHref });
  }

  private mapError(err: Error & { code?: string }): ImageCacheError {
    if (this.cancelReason) return this.cancelReason;
    return networkError(err, { what: `${this.p.method} ${this.p.label}`, ctx: this.p.ctx });
  }
}

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

const DIGITS = /^\d+$/;

export function contentLength(headers: Headers): number | undefined {
  const v = header(headers, 'content-length')?.trim();
  return v !== undefined && DIGITS.test(v) ? Number(v) : undefined;
}
