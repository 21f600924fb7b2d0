import { ImageCacheError, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import { coded, requestHead } from './connection';
import { HeadConnection, type ConnectionUser } from './idle-sockets';
import type { HttpResponse, SendParams } from './request';
import { ResponseHeadParser, type ResponseHead } from './response-parser';
import { networkError } from './transfer-errors';

/**
 * One HEAD over our own HTTP/1.1 client, on a kept connection to the origin when there is one (a warm cache
 * hit is one request on an open socket), else a new one; the connection is kept again when the server allows.
 * A kept connection that the server had closed meanwhile fails before any byte of an answer: the HEAD is then
 * sent once more on a new connection.
 */
export class HeadExchange implements ConnectionUser {
  private conn?: HeadConnection;
  private request = '';
  private head = new ResponseHeadParser();
  private received = false;
  private reused = false;
  private done = false;
  /** The connect timeout of a new connection (the answer's is the connection's, see HeadConnection.arm). */
  private connectTimer?: NodeJS.Timeout;
  private onAbort?: () => void;

  constructor(
    private readonly p: SendParams,
    private readonly resolve: (r: HttpResponse) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  start(): void {
    const { signal } = this.p;
    if (signal) {
      if (signal.aborted) {
        this.done = true;
        this.reject(this.abortError());
        return;
      }
      this.onAbort = () => this.end(this.abortError());
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
    try {
      this.request = requestHead('HEAD', this.p.url, this.p.headers, [], (m) => this.permanent(m));
    } catch (err) {
      this.end(err as ImageCacheError);
      return;
    }
    // A HEAD to a checked redirect target (pinned address) neither takes nor keeps a shared connection.
    const kept = this.p.pin ? undefined : this.p.dispatchers.idle.take(this.p.url.origin, this);
    if (kept) {
      this.reused = true;
      this.conn = kept;
      this.send();
    } else {
      this.connect();
    }
  }

  private connect(): void {
    const { conn, ready } = HeadConnection.open(this.p.url, this.p.dispatchers.connect, this.p.pin);
    conn.user = this;
    this.conn = conn;
    conn.socket.once(ready, () => this.send());
    const limit = this.p.dispatchers.connect.timeoutMs;
    if (limit > 0) {
      this.connectTimer = setTimeout(
        () => this.fail(coded('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')),
        limit,
      );
    }
  }

  private send(): void {
    if (this.done) return;
    if (this.connectTimer) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
    const conn = this.conn!;
    conn.socket.write(this.request);
    const limit = this.p.ctx.inactivityTimeoutMs;
    if (limit > 0) conn.arm(limit);
  }

  onData(chunk: Buffer): void {
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
    const conn = this.conn!;
    const connection = head.headers.connection;
    // A HEAD answer has no body: bytes after it mean a broken server, and the connection is not reused.
    if (
      head.minor === 1 &&
      !(connection !== undefined && String(connection).toLowerCase().includes('close')) &&
      rest.length === 0 &&
      !this.p.pin
    ) {
      this.p.dispatchers.idle.park(this.p.url.origin, conn);
    } else {
      conn.destroy();
    }
    this.resolve({
      status: head.status,
      statusText: head.statusText,
      headers: head.headers,
      url: this.p.url,
    });
  }

  onError(err: Error): void {
    this.fail(err);
  }

  onEnd(): void {
    this.fail(coded('connection closed before an answer', 'UND_ERR_SOCKET'));
  }

  onClose(): void {
    this.fail(coded('connection closed before an answer', 'ECONNRESET'));
  }

  onTimeout(): void {
    this.fail(coded('headers timeout', 'UND_ERR_HEADERS_TIMEOUT'));
  }

  private fail(err: Error & { code?: string }): void {
    if (this.done) return;
    if (this.reused && !this.received && err.code !== 'UND_ERR_HEADERS_TIMEOUT') {
      // The server closed the kept connection before our request reached it: a new connection, once.
      this.reused = false;
      this.conn?.destroy();
      this.head = new ResponseHeadParser();
      this.connect();
      return;
    }
    this.end(networkError(err, { what: this.what(), ctx: this.p.ctx }));
  }

  private end(err: ImageCacheError): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.conn?.destroy();
    this.reject(err);
  }

  private release(): void {
    this.conn?.disarm();
    if (this.connectTimer) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
    if (this.onAbort) this.p.signal?.removeEventListener('abort', this.onAbort);
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
