import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import { closeHttpConnections, resolveSource } from '@imagecache/sources';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { caught, readAll, sleep } from './helpers';

let server: ImageServer;
const body = randomBytes(3 << 20);
const modified = new Date('2024-03-01T10:20:30Z');

beforeAll(async () => {
  server = await startImageServer();
});
afterAll(async () => {
  await server.close();
  await closeHttpConnections();
});

describe('open()', () => {
  it('streams the whole image with its size', async () => {
    server.route('/full.img', { body, lastModified: modified, etag: '"e1"' });
    const source = await resolveSource(server.url('/full.img'));
    const opened = await source.open();
    expect(opened.start).toBe(0);
    expect(opened.totalSize).toBe(body.length);
    expect(opened.info.validator).toBe('"e1"');
    expect(opened.info.updatedAt).toEqual(modified);
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
    expect(server.count('HEAD', '/full.img')).toBe(0);
  });

  it('resumes with Range + If-Range when the server honours it (206)', async () => {
    server.route('/resume.img', { body, etag: '"r1"', ranges: true });
    const source = await resolveSource(server.url('/resume.img'));
    const offset = 1_000_000;
    const opened = await source.open({ offset, validator: '"r1"' });
    expect(opened.start).toBe(offset);
    expect(opened.totalSize).toBe(body.length);
    expect(opened.info.size).toBe(body.length);
    expect((await readAll(opened.stream)).equals(body.subarray(offset))).toBe(true);
    const req = server.requests.filter((r) => r.path === '/resume.img').pop();
    expect(req?.headers.range).toBe(`bytes=${offset}-`);
    expect(req?.headers['if-range']).toBe('"r1"');
  });

  it('resumes with a Last-Modified validator', async () => {
    server.route('/resume-lm.img', { body, lastModified: modified, ranges: true });
    const source = await resolveSource(server.url('/resume-lm.img'));
    const info = await source.show();
    const opened = await source.open({ offset: 5, validator: info.validator });
    expect(opened.start).toBe(5);
    expect((await readAll(opened.stream)).equals(body.subarray(5))).toBe(true);
  });

  it('starts again from 0 when the image changed (If-Range does not match → 200)', async () => {
    server.route('/changed.img', { body, etag: '"new"', ranges: true });
    const opened = await (
      await resolveSource(server.url('/changed.img'))
    ).open({ offset: 100, validator: '"old"' });
    expect(opened.start).toBe(0);
    expect(opened.totalSize).toBe(body.length);
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
  });

  it('starts again from 0 when the server ignores Range (200)', async () => {
    server.route('/norange.img', { body, etag: '"x"' });
    const opened = await (
      await resolveSource(server.url('/norange.img'))
    ).open({ offset: 100, validator: '"x"' });
    expect(opened.start).toBe(0);
    expect((await readAll(opened.stream)).length).toBe(body.length);
  });

  it('sends no Range without a validator, or with a weak one', async () => {
    server.route('/noval.img', { body, ranges: true });
    const source = await resolveSource(server.url('/noval.img'));
    for (const validator of [undefined, 'W/"weak"']) {
      const opened = await source.open({ offset: 100, validator });
      expect(opened.start).toBe(0);
      await readAll(opened.stream);
    }
    expect(server.requests.filter((r) => r.path === '/noval.img' && r.headers.range)).toHaveLength(0);
  });

  it('fails with a retryable ImageDownloadFailed when the connection is reset mid-body', async () => {
    server.route('/trunc.img', { body, truncateAt: 500_000 });
    const opened = await (await resolveSource(server.url('/trunc.img'))).open();
    const err = await caught(readAll(opened.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/connection closed after \d+ of 3145728 bytes/);
  });

  it('fails when the body stops short of Content-Length and the server goes silent', async () => {
    server.route('/short.img', { body: body.subarray(0, 1000), contentLength: 5000 });
    const source = await resolveSource(server.url('/short.img'), { http: { inactivityTimeoutMs: 200 } });
    const opened = await source.open();
    expect(opened.totalSize).toBe(5000);
    const err = await caught(readAll(opened.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
  });

  it('fails when more bytes than Content-Length arrive', async () => {
    server.route('/long.img', { body: body.subarray(0, 3000), contentLength: 1000 });
    const opened = await (await resolveSource(server.url('/long.img'))).open();
    const err = await caught(readAll(opened.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.message).toMatch(/more bytes than its Content-Length 1000/);
  });

  it('fails within about a second when the server stalls, with a 300 ms inactivity timeout', async () => {
    server.route('/stall.img', { body, stallAt: 200_000 });
    const source = await resolveSource(server.url('/stall.img'), { http: { inactivityTimeoutMs: 300 } });
    const t0 = Date.now();
    const opened = await source.open();
    const err = await caught(readAll(opened.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/no data for 300 ms/);
    expect(Date.now() - t0).toBeLessThan(1200);
  });

  it('stops with OperationAborted when the signal aborts mid-stream', async () => {
    server.route('/abort.img', { body, stallAt: 1_000_000 });
    const ac = new AbortController();
    const opened = await (await resolveSource(server.url('/abort.img'))).open({ signal: ac.signal });
    let got = 0;
    const err = await caught(
      (async () => {
        for await (const chunk of opened.stream) {
          got += (chunk as Buffer).length;
          if (got >= 100_000) ac.abort();
        }
      })(),
    );
    expect(err).toBeInstanceOf(OperationAborted);
    expect(err.code).toBe('ABORTED');
  });

  it('rejects with OperationAborted when the signal is aborted before the answer', async () => {
    server.route('/late.img', { body, delayMs: 300 });
    const ac = new AbortController();
    const p = (await resolveSource(server.url('/late.img'))).open({ signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const err = await caught(p);
    expect(err).toBeInstanceOf(OperationAborted);
    const aborted = AbortSignal.abort();
    expect(
      await caught((await resolveSource(server.url('/late.img'))).show({ signal: aborted })),
    ).toBeInstanceOf(OperationAborted);
    await sleep(300); // let the server answer before it is closed
  });

  it('stops the transfer when the reader gives up early', async () => {
    server.route('/early.img', { body });
    const opened = await (await resolveSource(server.url('/early.img'))).open();
    for await (const _chunk of opened.stream) break;
    expect(opened.stream.destroyed).toBe(true);
  });
});

describe('a raw server', () => {
  let raw: net.Server;
  let port = 0;
  let answer: (socket: net.Socket) => void = () => undefined;
  beforeAll(async () => {
    raw = net.createServer((s) => s.once('data', () => answer(s)));
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    port = (raw.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise((r) => raw.close(r)));

  it('fails with a retryable connect timeout when the connection is never set up (TLS handshake unanswered)', async () => {
    answer = () => undefined;
    const t0 = Date.now();
    const source = await resolveSource(`https://127.0.0.1:${port}/x`, { http: { connectTimeoutMs: 200 } });
    const err = await caught(source.show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/could not connect within 200 ms/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('fails when a 206 answers another range than asked: starts over', async () => {
    let n = 0;
    answer = (s) => {
      n++;
      if (n === 1)
        s.end('HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10\r\nContent-Length: 4\r\n\r\nabcd');
      else s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789');
    };
    const opened = await (
      await resolveSource(`http://127.0.0.1:${port}/x`)
    ).open({ offset: 5, validator: '"v"' });
    expect(opened.start).toBe(0);
    expect((await readAll(opened.stream)).toString()).toBe('0123456789');
    expect(n).toBe(2);
  });

  it('fails when the body ends early on a Connection: close answer', async () => {
    answer = (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n01234');
    const opened = await (await resolveSource(`http://127.0.0.1:${port}/x`)).open();
    const err = await caught(readAll(opened.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
  });

  it('fails when extra bytes follow the body', async () => {
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789EXTRA');
    const opened = await (await resolveSource(`http://127.0.0.1:${port}/x`)).open();
    expect(await caught(readAll(opened.stream))).toBeInstanceOf(ImageDownloadFailed);
  });
});
