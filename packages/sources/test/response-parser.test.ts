import {
  ChunkedDecoder,
  framingOf,
  MAX_HEAD_BYTES,
  ProtocolError,
  ResponseHeadParser,
} from '../src/http/response-parser';

function parse(text: string | Buffer[]) {
  const p = new ResponseHeadParser();
  const parts = typeof text === 'string' ? [Buffer.from(text, 'latin1')] : text;
  let got;
  for (const part of parts) got = p.push(part) ?? got;
  return got;
}

describe('ResponseHeadParser', () => {
  it('parses a head split anywhere, keeps the bytes after it, repeats headers as arrays', () => {
    const text =
      'HTTP/1.1 206 Partial Content\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 3\r\n\r\nabc';
    for (let cut = 1; cut < text.length; cut++) {
      const got = parse([Buffer.from(text.slice(0, cut)), Buffer.from(text.slice(cut))]);
      expect(got?.head).toEqual({
        status: 206,
        statusText: 'Partial Content',
        headers: { 'set-cookie': ['a', 'b'], 'content-length': '3' },
        minor: 1,
      });
      // The bytes after the head that came with the push that completed it.
      const body = text.indexOf('abc');
      expect(got?.rest.toString()).toBe(cut < body ? 'abc' : text.slice(body, cut));
    }
  });

  it('skips interim 1xx heads', () => {
    const got = parse(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.0 200 OK\r\n\r\nz',
    );
    expect(got?.head.status).toBe(200);
    expect(got?.head.minor).toBe(0);
    expect(got?.rest.toString()).toBe('z');
  });

  it.each([
    ['not HTTP', 'ICY 200 OK\r\n\r\n'],
    ['HTTP/2 status line', 'HTTP/2 200\r\n\r\n'],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n'],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => parse(text)).toThrow(ProtocolError);
  });

  it('refuses a head over the limit, without waiting for its end', () => {
    const p = new ResponseHeadParser();
    p.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    expect(() => p.push(Buffer.alloc(MAX_HEAD_BYTES, 'a'))).toThrow(/over/);
  });
});

describe('framingOf', () => {
  const head = (headers: Record<string, string | string[]>, status = 200) => ({
    status,
    statusText: '',
    headers,
    minor: 1,
  });
  it('chunked wins over Content-Length; length; close otherwise; none for 204/304', () => {
    expect(framingOf(head({ 'transfer-encoding': 'chunked', 'content-length': '5' }))).toEqual({
      kind: 'chunked',
    });
    expect(framingOf(head({ 'content-length': '5' }))).toEqual({ kind: 'length', length: 5 });
    expect(framingOf(head({ 'content-length': ['5', '5'] }))).toEqual({ kind: 'length', length: 5 });
    expect(framingOf(head({}))).toEqual({ kind: 'close' });
    expect(framingOf(head({}, 204))).toEqual({ kind: 'none' });
  });
  it('refuses contradictory lengths and transfer codings that are not the image bytes', () => {
    expect(() => framingOf(head({ 'content-length': ['5', '6'] }))).toThrow(ProtocolError);
    expect(() => framingOf(head({ 'content-length': '-1' }))).toThrow(ProtocolError);
    expect(() => framingOf(head({ 'transfer-encoding': 'gzip, chunked' }))).toThrow(ProtocolError);
    expect(() => framingOf(head({ 'transfer-encoding': 'gzip' }))).toThrow(ProtocolError);
  });
});

describe('ChunkedDecoder', () => {
  const wire = Buffer.from('5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\nEXTRA');
  it('decodes a body fed a byte at a time or whole, and reports where it ended', () => {
    for (const step of [1, 3, wire.length]) {
      const d = new ChunkedDecoder();
      const out: Buffer[] = [];
      let used = 0;
      for (let i = 0; i < wire.length && !d.done; i += step) {
        const part = wire.subarray(i, i + step);
        const n = d.decode(part, (b) => out.push(Buffer.from(b)));
        used = i + n;
      }
      expect(Buffer.concat(out).toString()).toBe('hello world');
      expect(d.done).toBe(true);
      expect(wire.subarray(used).toString()).toBe('EXTRA');
    }
  });
  it('refuses a bad size line and data longer than its size', () => {
    expect(() => new ChunkedDecoder().decode(Buffer.from('zz\r\n'), () => undefined)).toThrow(ProtocolError);
    expect(() => new ChunkedDecoder().decode(Buffer.from('2\r\nabc\r\n'), () => undefined)).toThrow(
      ProtocolError,
    );
  });
});
