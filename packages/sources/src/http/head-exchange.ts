import type * as net from 'node:net';
import { ImageCacheError, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import { coded, openSocket, requestHead } from './connection';
import type { HttpResponse, SendParams } from './request';
import { ResponseHeadParser, type ResponseHead } from './response-parser';
import { networkError } from './transfer-errors';

/**
 * One HEAD over our own HTTP/1.1 client, on a kept connection to the origin when there is one (a warm cache
 * hit is one request on an open socket), else a new one; the connection is kept again when the server allows.
 * A kept connection that the server had closed meanwhile fails before any byte of an answer: the HEAD is then
 * sent once more on a new connection.
 */
export class HeadExchange {
  private socket?: net.Socket;
  private request = '';
  private head = new ResponseHeadParser();
  private received = false;
  private reused = false;
  private done = false;
  private timer?: NodeJS.Timeout;
  private readonly onAbort = () => this.end(this.abortError());

  constructor(
    private readonly p: SendParams,
    private readonly resolve: (r: HttpResponse) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  start(): void {
    if (this.p.signal?.aborted) {
      this.done = true;
      this.reject(this.abortError());
      return;
    }
    this.p.signal?.addEventListener('abort', this.onAbort, { once: true });
    try {
      this.request = requestHead('HEAD', this.p.url, this.p.headers, [], (m) => this.permanent(m));
    } catch (err) {
      this.end(err as ImageCacheError);
      return;
    }
    const request = this.request;
    // A HEAD to a checked redirect target (pinned address) neither takes nor keeps a shared connection.
    const kept = this.p.pin ? undefined : this.p.dispatchers.idle.take(this.p.url.origin);
    if (kept) {
      this.reused = true;
      this.attach(kept);
      this.send(request);
    } else {
      this.connect(request);
    }
  }

  private connect(request: string): void {
    const { socket, ready } = openSocket(this.p.url, this.p.dispatchers.connect, undefined, this.p.pin);
    this.attach(socket);
    socket.once(ready, () => this.send(request));
    const limit = this.p.dispatchers.connect.timeoutMs;
    if (limit > 0) {
      this.timer = setTimeout(() => this.fail(coded('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')), limit);
    }
  }

  private readonly onSocketData = (chunk: Buffer) => this.onData(chunk);
  private readonly onSocketError = (err: Error) => this.fail(err);
  private readonly onSocketEnd = () =>
    this.fail(coded('connection closed before an answer', 'UND_ERR_SOCKET'));
  private readonly onSocketClose = () => this.fail(coded('connection closed before an answer', 'ECONNRESET'));

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onSocketData).on('error', this.onSocketError);
    socket.on('end', this.onSocketEnd).on('close', this.onSocketClose);
  }

  /** Takes this exchange's listeners off the socket (Node's own stay). */
  private detach(socket: net.Socket): void {
    socket.off('data', this.onSocketData).off('error', this.onSocketError);
    socket.off('end', this.onSocketEnd).off('close', this.onSocketClose);
  }

  private send(request: string): void {
    if (this.done) return;
    clearTimeout(this.timer);
    this.socket!.write(request);
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (limit > 0) {
      this.timer = setTimeout(() => this.fail(coded('headers timeout', 'UND_ERR_HEADERS_TIMEOUT')), limit);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.received = true;
    let got: { head: ResponseHead; rest: Buffer } | undefined;
    try {
      got = this.head.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (!got) return;
    const { head, rest } = got;
    this.done = true;
    this.release();
    const socket = this.socket!;
    this.detach(socket);
    const connection = String(head.headers.connection ?? '').toLowerCase();
    // A HEAD answer has no body: bytes after it mean a broken server, and the connection is not reused.
    if (head.minor === 1 && !connection.includes('close') && rest.length === 0 && !this.p.pin) {
      this.p.dispatchers.idle.park(this.p.url.origin, socket);
    } else {
      socket.destroy();
    }
    this.resolve({
      status: head.status,
      statusText: head.statusText,
      headers: head.headers,
      url: this.p.url,
    });
  }

  private fail(err: Error & { code?: string }): void {
    if (this.done) return;
    if (this.reused && !this.received && err.code !== 'UND_ERR_HEADERS_TIMEOUT') {
      // The server closed the kept connection before our request reached it: a new connection, once.
      this.reused = false;
      if (this.socket) this.detach(this.socket);
      this.socket?.destroy();
      clearTimeout(this.timer);
      this.head = new ResponseHeadParser();
      this.connect(this.request);
      return;
    }
    this.end(networkError(err, { what: this.what(), ctx: this.p.ctx }));
  }

  private end(err: ImageCacheError): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.socket?.destroy();
    this.reject(err);
  }

  private release(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.p.signal?.removeEventListener('abort', this.onAbort);
  }

  private permanent(message: string): ImageDownloadFailed {
    return new ImageDownloadFailed(`${this.what()}: ${message}`, {
      href: this.p.ctx.safeHref,
      retryable: false,
    });
  }

  private what(): string {
    return `HEAD ${this.p.label}`;
  }

  private abortError(): OperationAborted {
    return new OperationAborted(`${this.what()}: aborted`, { href: this.p.ctx.safeHref });
  }
}
