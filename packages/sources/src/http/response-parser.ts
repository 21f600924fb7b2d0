import type { Headers } from './request';

/** A response head longer than this is refused (undici's default is 16 KiB; registries send long ones). */
export const MAX_HEAD_BYTES = 64 << 10;
/** A chunk-size line (with extensions) or a trailer line longer than this is refused. */
const MAX_LINE_BYTES = 4 << 10;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
/** A header name (RFC 9110 §5.6.2). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface ResponseHead {
  status: number;
  statusText: string;
  /** Header names in lower case; a repeated header is an array (as undici gives it). */
  headers: Headers;
  /** 1.0 or 1.1: an HTTP/1.0 answer without Content-Length ends when the connection closes. */
  minor: number;
}

/** How the body of a response ends (RFC 9112 §6.3). */
export type Framing =
  { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' };

/** A protocol violation: the connection can't be trusted (not retried: the same server sends the same). */
export class ProtocolError extends Error {
  readonly code = 'HTTP_PROTOCOL_ERROR';
}

/**
 * Gathers the head of a response (interim 1xx heads skipped). `push` returns the final head and the bytes after
 * it once the blank line arrives; until then it keeps what it was given (at most MAX_HEAD_BYTES).
 */
export class ResponseHeadParser {
  private pending: Buffer | undefined;

  push(chunk: Buffer): { head: ResponseHead; rest: Buffer } | undefined {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES)
          throw new ProtocolError(`response head over ${MAX_HEAD_BYTES} bytes`);
        // The caller may reuse its buffer: keep a copy.
        this.pending = Buffer.from(buf);
        return undefined;
      }
      if (end > MAX_HEAD_BYTES) throw new ProtocolError(`response head over ${MAX_HEAD_BYTES} bytes`);
      const head = parseHead(buf.toString('latin1', 0, end));
      buf = buf.subarray(end + 4);
      if (head.status >= 200 || head.status === 101) {
        this.pending = undefined;
        return { head, rest: buf };
      }
      // 100 Continue, 103 Early Hints: another head follows.
    }
  }
}

function parseHead(text: string): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const statusLine = text.slice(0, eol);
  const m = STATUS_LINE.exec(statusLine);
  if (!m) throw new ProtocolError(`not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
  // No prototype: a header named __proto__ is a header like any other.
  const headers: Headers = Object.create(null) as Headers;
  // One line at a time, [start, eol), without splitting the head into an array first.
  while (eol < text.length) {
    const start = eol + 2;
    eol = text.indexOf('\r\n', start);
    if (eol < 0) eol = text.length;
    const colon = text.indexOf(':', start);
    const token = colon > start && colon < eol ? text.slice(start, colon) : '';
    // Obsolete line folding (a line starting with white space) is refused, as RFC 9112 §5.2 allows: white space
    // is no token character.
    if (!TOKEN.test(token)) {
      throw new ProtocolError(
        `malformed header line ${JSON.stringify(text.slice(start, Math.min(eol, start + 80)))}`,
      );
    }
    const name = token.toLowerCase();
    const value = text.slice(colon + 1, eol).trim();
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = [prev, value];
  }
  return { status: Number(m[2]), statusText: m[3] ?? '', headers, minor: Number(m[1]) };
}

/** The body's framing of an answer to a GET (a HEAD has none), or a ProtocolError for contradictory lengths. */
export function framingOf(head: ResponseHead): Framing {
  if (head.status === 204 || head.status === 304 || head.status < 200) return { kind: 'none' };
  const te = head.headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = (Array.isArray(te) ? te.join(',') : te)
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean);
    // Any other coding (gzip, or chunked under another one) would hand us bytes that are not the image's.
    if (codings.length === 1 && codings[0] === 'chunked') return { kind: 'chunked' };
    throw new ProtocolError(`unsupported transfer coding ${JSON.stringify(codings.join(', '))}`);
  }
  const cl = head.headers['content-length'];
  if (cl !== undefined) {
    const values = new Set((Array.isArray(cl) ? cl.join(',') : cl).split(',').map((s) => s.trim()));
    const [only] = values;
    if (
      values.size !== 1 ||
      only === undefined ||
      !/^\d{1,16}$/.test(only) ||
      !Number.isSafeInteger(Number(only))
    ) {
      throw new ProtocolError(`invalid Content-Length ${JSON.stringify(String(cl).slice(0, 40))}`);
    }
    return { kind: 'length', length: Number(only) };
  }
  return { kind: 'close' };
}

type ChunkState = 'size' | 'data' | 'data-end' | 'trailer' | 'done';

/**
 * Decodes a chunked body incrementally. `decode` hands each run of data bytes (views into `input`, no copy) to
 * `onData` and returns how many input bytes it used: all of them, unless the last chunk and its trailers ended
 * inside `input` (then the rest is bytes past the body).
 */
export class ChunkedDecoder {
  private state: ChunkState = 'size';
  private line = '';
  private remaining = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  decode(input: Buffer, onData: (data: Buffer) => void): number {
    let i = 0;
    while (i < input.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, input.length - i);
        onData(input.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      const nl = input.indexOf(10, i);
      const upto = nl < 0 ? input.length : nl + 1;
      this.line += input.toString('latin1', i, upto);
      i = upto;
      if (this.line.length > MAX_LINE_BYTES) throw new ProtocolError('chunk header or trailer line too long');
      if (nl < 0) break;
      const line = this.line.endsWith('\r\n') ? this.line.slice(0, -2) : this.line.slice(0, -1);
      this.line = '';
      this.onLine(line);
    }
    return i;
  }

  private onLine(line: string): void {
    if (this.state === 'data-end') {
      if (line !== '') throw new ProtocolError('chunk data longer than its size');
      this.state = 'size';
    } else if (this.state === 'size') {
      const m = /^([0-9a-fA-F]{1,13})[ \t]*(;.*)?$/.exec(line);
      if (!m) throw new ProtocolError(`invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`);
      this.remaining = parseInt(m[1]!, 16);
      this.state = this.remaining === 0 ? 'trailer' : 'data';
    } else if (this.state === 'trailer') {
      if (line === '') this.state = 'done';
    }
  }
}
