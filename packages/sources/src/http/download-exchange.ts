import type * as net from 'node:net';
import { ImageCacheError, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import type { ByteSink } from '../types';
import { HttpBodyStream, type BodyFeed } from './body-stream';
import { coded, openSocket, requestHead } from './connection';
import type { HttpResponse, SendParams } from './request';
import {
  ChunkedDecoder,
  framingOf,
  ResponseHeadParser,
  type Framing,
  type ResponseHead,
} from './response-parser';
import { MinRate, slowError } from './min-rate';
import { networkError, shortBodyError, type ErrorPlace } from './transfer-errors';

/** Socket reads land here while no sink region is in use (the head, 'data' mode, chunked framing). */
const SCRATCH_BYTES = 64 << 10;

type State = 'connecting' | 'head' | 'body' | 'done';
/** How the reader takes the body: not yet decided (kept by show()), 'data' events, or a ByteSink. */
type Mode = 'unset' | 'readable' | 'sink';

/**
 * One streamed GET on a connection of its own, over `net`/`tls` (HTTP/1.1, `Connection: close`). The body ends
 * by Content-Length, chunked framing or the server's FIN (HTTP/1.0 style); a FIN before a declared end is a
 * typed, retryable error, bytes past it a permanent one. Backpressure pauses the socket, never a parser, so no
 * server behaviour can leave the process in a state it can't recover from. On plain http a ByteSink receives
 * the body straight from the socket (no copy, no per-read allocation).
 */
export class DownloadExchange implements BodyFeed {
  private state: State = 'connecting';
  private mode: Mode = 'unset';
  private socket?: net.Socket;
  private readonly head = new ResponseHeadParser();
  private framing: Framing = { kind: 'none' };
  private chunked?: ChunkedDecoder;
  /** Body bytes still to come (Content-Length framing). */
  private remaining = 0;
  private body?: HttpBodyStream;
  /** Body bytes received before the reader chose a mode (copies). */
  private early: Buffer[] = [];
  private sink?: ByteSink;
  /** The region last handed to the socket as its read buffer. */
  private region?: Uint8Array;
  /** Bytes waiting for room in the sink (copies). */
  private backlog?: Buffer;
  private piped?: { resolve: () => void; reject: (e: Error) => void };
  /** Paused because the reader is behind (the inactivity timeout doesn't count this time). */
  private paused = false;
  private scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private signal?: AbortSignal;
  private cancelReason?: ImageCacheError;
  private timer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
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
    this.bindSignal(p.signal);
    let request: string;
    try {
      request = this.requestText();
    } catch (err) {
      this.end(err as ImageCacheError);
      return;
    }
    const { socket, ready } = openSocket(
      p.url,
      p.dispatchers.connect,
      { buffer: () => this.nextReadBuffer(), callback: (n, buf) => this.onRead(n, buf) },
      p.pin,
    );
    this.socket = socket;
    if (ready === 'secureConnect') socket.on('data', (chunk: Buffer) => this.onBytes(chunk, false));
    socket.once(ready, () => this.onConnected(request));
    socket.on('error', (err) => this.fail(err));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd(true));
    const limit = this.p.dispatchers.connect.timeoutMs;
    if (limit > 0) {
      this.timer = setTimeout(() => this.fail(coded('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')), limit);
    }
  }

  // --- BodyFeed -------------------------------------------------------------------------------------------

  bindSignal(signal: AbortSignal | undefined): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = signal;
    if (!signal || this.state === 'done') return;
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  resume(): void {
    if (this.mode === 'unset') {
      this.mode = 'readable';
      const early = this.early;
      this.early = [];
      for (const b of early) this.deliver(b, false);
      if (this.state === 'done') {
        // Failed before the reader came: it gets the bytes that were good, then the error.
        if (this.cancelReason) this.body!.destroy(this.cancelReason);
        return;
      }
      if (this.bodyComplete()) return this.endBody();
    }
    if (this.mode === 'readable') this.unpause();
  }

  pipeTo(sink: ByteSink): Promise<void> {
    if (this.mode !== 'unset') return Promise.reject(new Error('pipeTo: the body is already being read'));
    return new Promise<void>((resolve, reject) => {
      this.mode = 'sink';
      this.sink = sink;
      this.piped = { resolve, reject };
      if (this.state === 'done') {
        // Ended (or failed) before the reader came.
        if (this.cancelReason) reject(this.cancelReason);
        return;
      }
      const early = this.early;
      this.early = [];
      try {
        for (const b of early) this.toSink(b);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      // With a backlog the body ends once the sink has taken it (onRoom).
      if (!this.ended() && !this.backlog && this.bodyComplete()) return this.endBody();
      if (!this.backlog) this.unpause();
    });
  }

  bodyDestroyed(err: Error | null): void {
    if (this.state === 'done') return;
    this.cancel(
      err instanceof ImageCacheError ? err : this.abortError(err ? err.message : 'closed by the reader'),
    );
  }

  // --- socket -----------------------------------------------------------------------------------------------

  private requestText(): string {
    const { p } = this;
    if (p.method !== 'GET' || p.body !== undefined)
      throw new ImageCacheError('DownloadExchange sends GETs only');
    return requestHead(
      'GET',
      p.url,
      p.headers,
      ['connection: close'],
      (message) =>
        new ImageDownloadFailed(`${this.what()}: ${message}`, { href: p.ctx.safeHref, retryable: false }),
    );
  }

  private onConnected(request: string): void {
    if (this.state !== 'connecting') return;
    this.state = 'head';
    clearTimeout(this.timer);
    this.socket!.write(request);
    // No byte of an answer for inactivityTimeoutMs is a timeout.
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (limit > 0) {
      this.timer = setTimeout(() => this.timeOut('UND_ERR_HEADERS_TIMEOUT'), limit);
    }
  }

  /** The buffer the next plain-socket read lands in: the sink's free space while the body streams into it. */
  private nextReadBuffer(): Uint8Array {
    if (this.mode === 'sink' && this.state === 'body' && !this.chunked && !this.backlog) {
      const r = this.sink!.region();
      if (r && r.length > 0) return (this.region = r);
    }
    this.region = undefined;
    return this.scratch;
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    const inPlace = buf === this.region && this.region !== undefined;
    const data = inPlace ? Buffer.from(buf.buffer, buf.byteOffset, n) : this.scratch.subarray(0, n);
    this.onBytes(data, inPlace, true);
    return !this.paused && this.state !== 'done';
  }

  /**
   * Bytes from the socket. `inPlace`: they are already in the sink's region. `scratch`: they sit in a buffer
   * the next read reuses (copy what is kept).
   */
  private onBytes(data: Buffer, inPlace: boolean, scratch = false): void {
    if (this.state === 'done') return;
    try {
      if (this.state === 'head') {
        const got = this.head.push(data);
        if (!got) return;
        this.onHead(got.head);
        if ((this.state as State) !== 'body' || got.rest.length === 0) return;
        data = got.rest;
      }
      if (this.state !== 'body') return;
      this.onBodyBytes(data, inPlace, scratch);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private onHead(head: ResponseHead): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const res: HttpResponse = {
      status: head.status,
      statusText: head.statusText,
      headers: head.headers,
      url: this.p.url,
    };
    if (head.status < 200 || head.status >= 300) {
      // Only a 2xx answer's body is wanted; this connection is ours alone, so it is simply closed.
      this.state = 'done';
      this.finish();
      this.resolve(res);
      return;
    }
    this.framing = framingOf(head);
    this.state = 'body';
    if (this.framing.kind === 'chunked') this.chunked = new ChunkedDecoder();
    if (this.framing.kind === 'length') this.remaining = this.framing.length;
    this.body = new HttpBodyStream(this);
    res.body = this.body;
    // Nothing more is read until the reader asks: a response kept by show() costs no bandwidth.
    this.pause();
    this.watchInactivity();
    this.resolve(res);
    if (this.bodyComplete()) this.endBodyWhenRead();
  }

  private onBodyBytes(data: Buffer, inPlace: boolean, scratch: boolean): void {
    const framing = this.framing;
    const body = this.body!;
    if (framing.kind === 'chunked') {
      const decoder = this.chunked!;
      const used = decoder.decode(data, (run) => {
        body.bytes += run.length;
        this.deliver(run, scratch);
      });
      if (decoder.done && used < data.length) throw this.pastEnd();
    } else {
      if (framing.kind === 'length') {
        if (data.length > this.remaining) throw this.pastEnd();
        this.remaining -= data.length;
      }
      body.bytes += data.length;
      if (inPlace) {
        this.sink!.commit(data.length);
        if (this.state === 'body' && !this.sink!.region()) this.waitForSink();
      } else {
        this.deliver(data, scratch);
      }
    }
    if (this.state === 'body' && this.bodyComplete()) this.endBodyWhenRead();
  }

  /** Hands body bytes to the reader in its mode. `copy`: `data` is in a reused buffer. */
  private deliver(data: Buffer, copy: boolean): void {
    if (data.length === 0) return;
    if (this.mode === 'unset') this.early.push(copy ? Buffer.from(data) : data);
    else if (this.mode === 'sink') this.toSink(data);
    else if (!this.body!.push(copy ? Buffer.from(data) : data)) this.pause();
  }

  /** Copies bytes into the sink's regions; keeps what doesn't fit and pauses until there is room. */
  private toSink(data: Buffer): void {
    if (this.backlog) {
      // Still waiting for room: later bytes of the same read (chunked runs) queue behind.
      this.backlog = Buffer.concat([this.backlog, data]);
      return;
    }
    const sink = this.sink!;
    let off = 0;
    while (off < data.length) {
      const r = sink.region();
      if (!r || r.length === 0) {
        this.backlog = Buffer.from(data.subarray(off));
        this.waitForSink();
        return;
      }
      const n = Math.min(r.length, data.length - off);
      r.set(data.subarray(off, off + n));
      sink.commit(n);
      off += n;
      if (this.state === 'done') return;
    }
  }

  private waitForSink(): void {
    this.pause();
    // The sink calls back from its own continuation: whatever the sink throws (a bound passed) ends this
    // exchange instead of escaping as an unhandled rejection.
    this.sink!.waitForRoom(() => {
      try {
        this.onRoom();
      } catch (err) {
        this.fail(err as Error);
      }
    });
  }

  private onRoom(): void {
    if (this.state === 'done') return;
    const backlog = this.backlog;
    this.backlog = undefined;
    if (backlog) this.toSink(backlog);
    if (this.ended() || this.backlog) return;
    if (this.bodyComplete()) return this.endBody();
    if (this.sink!.region()) this.unpause();
    else this.waitForSink();
  }

  /** The exchange ended (read through a method call, so TypeScript doesn't narrow it away). */
  private ended(): boolean {
    return this.state === 'done';
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket?.pause();
  }

  private unpause(): void {
    if (!this.paused || this.state === 'done') return;
    this.paused = false;
    this.socket?.resume();
  }

  /** Every byte of the body has arrived (by length or chunked framing; a close-delimited body ends at FIN). */
  private bodyComplete(): boolean {
    if (this.framing.kind === 'length') return this.remaining === 0;
    if (this.framing.kind === 'chunked') return this.chunked!.done;
    return this.framing.kind === 'none';
  }

  /** Ends the body once the reader has taken what came before (early bytes, a backlog). */
  private endBodyWhenRead(): void {
    if (this.mode === 'unset' || this.backlog) return;
    this.endBody();
  }

  private endBody(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.finish();
    if (this.mode === 'sink') this.piped?.resolve();
    else this.body?.push(null);
  }

  /** The server's FIN (or the socket's close). */
  private onEnd(closed = false): void {
    if (this.state === 'done') return;
    if (this.state === 'connecting' || this.state === 'head') {
      this.fail(
        Object.assign(
          new Error(`connection closed before ${this.state === 'head' ? 'an answer' : 'connecting'}`),
          {
            code: closed ? 'ECONNRESET' : 'UND_ERR_SOCKET',
          },
        ),
      );
      return;
    }
    if (this.framing.kind === 'close' && !closed) {
      // A close-delimited body (HTTP/1.0, or no length): the FIN is its end.
      this.framing = { kind: 'none' };
      if (this.mode === 'unset' || this.backlog) return; // ended when the reader has taken the rest
      this.endBody();
      return;
    }
    if (this.bodyComplete()) return;
    const at = this.place();
    const where =
      this.framing.kind === 'chunked' ? 'closed inside a chunked body' : 'reset inside a body without length';
    this.failBody(
      this.framing.kind === 'length'
        ? shortBodyError(at, this.body?.bytes ?? 0)
        : new ImageDownloadFailed(`${at.what}: connection ${where} after ${at.got} bytes`, {
            href: this.p.ctx.safeHref,
            retryable: true,
          }),
    );
  }

  // --- endings ----------------------------------------------------------------------------------------------

  private fail(err: Error & { code?: string }): void {
    if (this.state === 'done') return;
    this.end(this.cancelReason ?? networkError(err, this.place()));
  }

  /** Ends the exchange with `err`: through the body once there is one, else as the answer to the request. */
  private end(err: ImageCacheError): void {
    if (this.body) {
      this.failBody(err);
      return;
    }
    this.state = 'done';
    this.finish();
    this.reject(err);
  }

  private failBody(err: ImageCacheError): void {
    this.state = 'done';
    this.cancelReason ??= err;
    this.finish();
    // No reader yet (a response kept by show(), or bytes that came with the head): the error waits for it,
    // as an 'error' event nobody listens to would end the process.
    if (this.mode === 'unset') return;
    if (this.mode === 'sink') {
      // The promise carries the error; nobody listens to the stream's 'error' in this mode.
      this.piped?.reject(err);
      if (!this.body!.destroyed) this.body!.destroy();
      return;
    }
    if (!this.body!.destroyed) this.body!.destroy(err);
  }

  /** Ends the exchange from this side (abort, timeout, reader gone), whatever its state. */
  private cancel(reason: ImageCacheError): void {
    if (this.state === 'done') return;
    this.cancelReason = reason;
    this.end(reason);
  }

  private timeOut(code: 'UND_ERR_HEADERS_TIMEOUT' | 'UND_ERR_BODY_TIMEOUT'): void {
    this.cancel(networkError(coded(code, code), this.place()));
  }

  /**
   * The body's inactivity timeout and minimum rate, checked a few times per period against the byte count
   * (nothing added per read). Time spent paused because the reader is behind does not count.
   */
  private watchInactivity(): void {
    const limit = this.p.ctx.inactivityTimeoutMs;
    const rate = new MinRate(this.p.ctx.minRateBytesPerSec ?? 0, this.p.ctx.minRateWindowMs ?? 0);
    if (!(limit > 0) && !rate.on) return;
    const shortest = Math.min(limit > 0 ? limit : Infinity, rate.on ? rate.windowMs : Infinity);
    const period = Math.min(1000, Math.max(10, Math.floor(shortest / 8)));
    let seen = -1;
    let since = Date.now();
    this.watchdog = setInterval(() => {
      const body = this.body;
      if (this.state !== 'body' || !body) return this.finish();
      const now = Date.now();
      if (this.paused || body.bytes !== seen) {
        seen = body.bytes;
        since = now;
      } else if (limit > 0 && now - since >= limit) {
        return this.timeOut('UND_ERR_BODY_TIMEOUT');
      }
      const slow = rate.check(now, body.bytes, this.paused);
      if (slow) this.cancel(slowError(this.place(), slow));
    }, period);
    this.watchdog.unref();
  }

  /** Releases the timers, the signal listener and the connection. Idempotent. */
  private finish(): void {
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    this.timer = this.watchdog = undefined;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.signal = undefined;
    this.socket?.destroy();
  }

  private pastEnd(): ImageDownloadFailed {
    const expected = this.framing.kind === 'length' ? ` ${this.framing.length}` : '';
    return new ImageDownloadFailed(
      `${this.what()}: the server sent more bytes than its ${this.framing.kind === 'chunked' ? 'chunked body' : `Content-Length${expected}`}`,
      { href: this.p.ctx.safeHref, retryable: false },
    );
  }

  private place(): ErrorPlace {
    return {
      what: this.what(),
      ctx: this.p.ctx,
      got: this.body?.bytes,
      expected: this.framing.kind === 'length' ? this.framing.length : undefined,
    };
  }

  private what(): string {
    return `${this.p.method} ${this.p.label}`;
  }

  private abortError(why = 'aborted'): OperationAborted {
    return new OperationAborted(`${this.what()}: ${why}`, { href: this.p.ctx.safeHref });
  }
}
