import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ImageAuthRequired, ImageDownloadFailed, ImageNotFound } from '@imagecache/errors';
import { closeHttpConnections, HttpSource, resolveSource } from '@imagecache/sources';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { caught, readAll, sleep } from './helpers';

let server: ImageServer;
const body = randomBytes(100_000);
const modified = new Date('2024-03-01T10:20:30Z');

beforeAll(async () => {
  server = await startImageServer();
});
afterAll(async () => {
  await server.close();
  await closeHttpConnections();
});

describe('show()', () => {
  it('takes size, updatedAt, noCache and the validator from a HEAD', async () => {
    server.route('/a/ubuntu%20img.qcow2', { body, lastModified: modified, etag: '"v1"' });
    const source = await resolveSource(server.url('/a/ubuntu%20img.qcow2'));
    expect(source).toBeInstanceOf(HttpSource);
    const info = await source.show();
    expect(info).toEqual({
      size: body.length,
      updatedAt: modified,
      noCache: false,
      immutable: false,
      validator: '"v1"',
      fileName: 'ubuntu img.qcow2',
    });
    expect(server.count('HEAD', '/a/ubuntu%20img.qcow2')).toBe(1);
    expect(server.count('GET', '/a/ubuntu%20img.qcow2')).toBe(0);
  });

  it('says noCache for Cache-Control: no-store, and uses Last-Modified as validator for a weak ETag', async () => {
    server.route('/nostore', {
      body,
      lastModified: modified,
      etag: 'W/"weak"',
      headers: { 'cache-control': 'private, No-Store' },
    });
    const info = await (await resolveSource(server.url('/nostore'))).show();
    expect(info.noCache).toBe(true);
    expect(info.validator).toBe(modified.toUTCString());
  });

  it.each([
    ['RFC 1123', 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['RFC 850', 'Sunday, 06-Nov-94 08:49:37 GMT'],
    ['asctime', 'Sun Nov  6 08:49:37 1994'],
  ])('parses a Last-Modified in the %s form', async (_form, text) => {
    server.route('/dated', { body, lastModified: text });
    const info = await (await resolveSource(server.url('/dated'))).show();
    expect(info.updatedAt?.toISOString()).toBe('1994-11-06T08:49:37.000Z');
  });

  it('leaves updatedAt undefined for an unparseable Last-Modified', async () => {
    server.route('/baddate', { body, lastModified: 'yesterday at noon' });
    const info = await (await resolveSource(server.url('/baddate'))).show();
    expect(info.updatedAt).toBeUndefined();
    expect(info.validator).toBe('yesterday at noon');
  });

  it('uses the GET headers when HEAD is refused (405), and open() reuses that GET', async () => {
    server.route('/nohead', { body, headStatus: 405, lastModified: modified });
    const source = await resolveSource(server.url('/nohead'));
    const info = await source.show();
    expect(info.size).toBe(body.length);
    expect(info.updatedAt).toEqual(modified);
    const opened = await source.open();
    expect(opened.start).toBe(0);
    expect(opened.totalSize).toBe(body.length);
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
    expect(server.count('HEAD', '/nohead')).toBe(1);
    expect(server.count('GET', '/nohead')).toBe(1);
  });

  it('asks with the GET alone when told a download follows (forDownload): its headers, its body for open()', async () => {
    server.route('/cold', { body, lastModified: modified, etag: '"c1"' });
    const source = await resolveSource(server.url('/cold'));
    const info = await source.show({ forDownload: true });
    expect(info).toMatchObject({ size: body.length, updatedAt: modified, validator: '"c1"', noCache: false });
    const opened = await source.open();
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
    expect(server.count('HEAD', '/cold')).toBe(0);
    expect(server.count('GET', '/cold')).toBe(1);
    // An error status is the GET's, mapped as any.
    server.route('/cold-gone', { status: 404 });
    const gone = await resolveSource(server.url('/cold-gone'));
    expect(await caught(gone.show({ forDownload: true }))).toBeInstanceOf(ImageNotFound);
    expect(server.count('HEAD', '/cold-gone')).toBe(0);
  });

  it('uses the GET when HEAD is answered 501', async () => {
    server.route('/head501', { body, headStatus: 501 });
    const source = await resolveSource(server.url('/head501'));
    expect((await source.show()).size).toBe(body.length);
    source.close?.();
    expect(server.count('GET', '/head501')).toBe(1);
  });

  it('uses the GET when HEAD is forbidden (403, as presigned GET URLs answer HEAD)', async () => {
    server.route('/presigned.img', { body, headStatus: 403 });
    const source = await resolveSource(server.url('/presigned.img'));
    expect((await source.show()).size).toBe(body.length);
    expect((await readAll((await source.open()).stream)).equals(body)).toBe(true);
    expect(server.count('HEAD', '/presigned.img')).toBe(1);
    expect(server.count('GET', '/presigned.img')).toBe(1);
  });

  it('uses the GET when HEAD says Content-Length: 0', async () => {
    // The test server can't answer HEAD and GET with different lengths: a server of its own does.
    const s = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': req.method === 'HEAD' ? '0' : String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const source = await resolveSource(`http://127.0.0.1:${(s.address() as AddressInfo).port}/zero.img`);
      expect((await source.show()).size).toBe(body.length);
      source.close?.();
    } finally {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  it('uses the GET when HEAD has no Content-Length; a size still unknown stays undefined', async () => {
    server.route('/chunked', { body, noContentLength: true, lastModified: modified });
    const source = await resolveSource(server.url('/chunked'));
    const info = await source.show();
    expect(info.size).toBeUndefined();
    expect(info.updatedAt).toEqual(modified);
    const opened = await source.open();
    expect(opened.totalSize).toBeUndefined();
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
    expect(server.count('HEAD', '/chunked')).toBe(1);
    expect(server.count('GET', '/chunked')).toBe(1);
  });

  it('drops the kept GET when open() asks for an offset, and when close() is called', async () => {
    server.route('/kept', { body, headStatus: 405, ranges: true, etag: '"k"' });
    const source = await resolveSource(server.url('/kept'));
    const info = await source.show();
    const opened = await source.open({ offset: 10, validator: info.validator });
    expect(opened.start).toBe(10);
    expect((await readAll(opened.stream)).equals(body.subarray(10))).toBe(true);
    expect(server.count('GET', '/kept')).toBe(2);
    await source.show();
    source.close?.();
    const again = await source.open();
    expect((await readAll(again.stream)).length).toBe(body.length);
  });

  it('is cheap when warm: resolve + HEAD reuse kept-alive connections', async () => {
    let connections = 0;
    const s = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': '1000', 'last-modified': modified.toUTCString() });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1000));
    });
    s.on('connection', () => connections++);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const href = `http://127.0.0.1:${(s.address() as AddressInfo).port}/warm.img`;
      for (let i = 0; i < 20; i++) await (await resolveSource(href)).show();
      const n = 300;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) expect((await (await resolveSource(href)).show()).size).toBe(1000);
      const perCallMs = Number(process.hrtime.bigint() - t0) / 1e6 / n;
      // undici waits one event-loop turn before reusing a connection, so back-to-back calls may use a second one.
      expect(connections).toBeLessThanOrEqual(2);
      // About 0.1-0.2 ms on an idle machine (server in the same process); the bound only catches gross regressions.
      expect(perCallMs).toBeLessThan(5);
    } finally {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
});

describe('redirects', () => {
  it('follows redirects to the image', async () => {
    server.route('/img', { body, lastModified: modified });
    server.route('/r1', { redirectTo: '/img' });
    server.route('/r0', { redirectTo: server.url('/r1') });
    const source = await resolveSource(server.url('/r0'));
    expect((await source.show()).size).toBe(body.length);
    const opened = await source.open();
    expect((await readAll(opened.stream)).equals(body)).toBe(true);
  });

  it('follows 10 redirects and refuses an 11th', async () => {
    server.route('/hop10', { body });
    for (let i = 0; i < 10; i++) server.route(`/hop${i}`, { redirectTo: `/hop${i + 1}` });
    server.route('/hop-1', { redirectTo: '/hop0' });
    expect((await (await resolveSource(server.url('/hop0'))).show()).size).toBe(body.length);
    const err = await caught((await resolveSource(server.url('/hop-1'))).show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/more than 10 redirects/);
  });

  it('refuses a redirect loop', async () => {
    server.route('/loop', { redirectTo: '/loop' });
    const source = await resolveSource(server.url('/loop'));
    expect(await caught(source.show())).toBeInstanceOf(ImageDownloadFailed);
    expect(await caught(source.open())).toBeInstanceOf(ImageDownloadFailed);
    expect(server.count('HEAD', '/loop')).toBe(11);
  });

  it('keeps a maxRedirects of 0 strict', async () => {
    server.route('/once', { redirectTo: '/img' });
    const source = await resolveSource(server.url('/once'), { http: { maxRedirects: 0 } });
    expect(await caught(source.show())).toBeInstanceOf(ImageDownloadFailed);
  });

  it('drops the Authorization header when redirected to another origin', async () => {
    const other = await startImageServer();
    try {
      other.route('/there', { body });
      server.route('/away', { redirectTo: other.url('/there') });
      const source = await resolveSource(server.url('/away'), { auth: { type: 'bearer', token: 'tok-123' } });
      const opened = await source.open();
      expect((await readAll(opened.stream)).length).toBe(body.length);
      const here = server.requests.filter((r) => r.path === '/away');
      expect(here[0]?.headers.authorization).toBe('Bearer tok-123');
      const there = other.requests.filter((r) => r.path === '/there');
      expect(there).toHaveLength(1);
      expect(there[0]?.headers.authorization).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});

describe('status mapping', () => {
  it.each([
    [404, ImageNotFound, 'IMAGE_NOT_FOUND', false],
    [403, ImageNotFound, 'IMAGE_NOT_FOUND', false],
    [410, ImageNotFound, 'IMAGE_NOT_FOUND', false],
    [401, ImageAuthRequired, 'IMAGE_AUTH_REQUIRED', false],
    [500, ImageDownloadFailed, 'IMAGE_DOWNLOAD_FAILED', true],
    [503, ImageDownloadFailed, 'IMAGE_DOWNLOAD_FAILED', true],
    [429, ImageDownloadFailed, 'IMAGE_DOWNLOAD_FAILED', true],
    [400, ImageDownloadFailed, 'IMAGE_DOWNLOAD_FAILED', false],
  ])('HTTP %d → %p', async (status, cls, code, retryable) => {
    server.route(`/status${status}`, { body, status });
    const source = await resolveSource(server.url(`/status${status}`));
    for (const call of [() => source.show(), () => source.open()]) {
      const err = await caught(call());
      expect(err).toBeInstanceOf(cls);
      expect(err.code).toBe(code);
      expect(err.retryable).toBe(retryable);
      expect(err.message).toMatch(
        new RegExp(`^(HEAD|GET) http://127\\.0\\.0\\.1:\\d+/status${status}: HTTP ${status} `),
      );
    }
  });

  it('reads a 404 message like "GET http://h/x.img: HTTP 404 Not Found"', async () => {
    const err = await caught((await resolveSource(server.url('/missing.img'))).open());
    expect(err.message).toBe(`GET ${server.url('/missing.img')}: HTTP 404 Not Found`);
  });

  it('passes Retry-After of a 429 on', async () => {
    server.route('/busy', { body, status: 429, headers: { 'retry-after': '7' } });
    const err = (await caught((await resolveSource(server.url('/busy'))).show())) as ImageDownloadFailed;
    expect(err.details.retryAfterMs).toBe(7000);
  });

  it('maps a refused connection to a retryable ImageDownloadFailed', async () => {
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    const err = await caught((await resolveSource(`http://127.0.0.1:${port}/x.img`)).show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/connection refused/);
  });

  it('maps a server that answers nothing within the inactivity timeout to a retryable failure', async () => {
    server.route('/slow', { body, delayMs: 1000 });
    const t0 = Date.now();
    const source = await resolveSource(server.url('/slow'), { http: { inactivityTimeoutMs: 300 } });
    const err = await caught(source.show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/no answer for 300 ms/);
    expect(Date.now() - t0).toBeLessThan(900);
    await sleep(1000 - (Date.now() - t0)); // let the server answer before it is closed
  });
});

describe('auth', () => {
  it('sends user:pass@ from the URL as Basic auth, strips it from the request, and never shows the password', async () => {
    server.route('/secret.img', { body });
    const source = await resolveSource(server.url('/secret.img').replace('://', '://alice:s3cr%40t@'));
    expect(source.safeHref).not.toContain('s3cr');
    expect((await source.show()).size).toBe(body.length);
    const req = server.requests.filter((r) => r.path === '/secret.img').pop();
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from('alice:s3cr@t').toString('base64')}`);

    const missing = await resolveSource(server.url('/nope.img').replace('://', '://alice:s3cr%40t@'));
    for (const call of [() => missing.show(), () => missing.open()]) {
      const err = (await caught(call())) as ImageNotFound;
      expect(err).toBeInstanceOf(ImageNotFound);
      expect(err.message).not.toMatch(/s3cr|alice/);
      expect(JSON.stringify(err.toJSON())).not.toMatch(/s3cr/);
    }
  });

  it('hides a password that holds a raw "@"', async () => {
    const err = await caught(
      (await resolveSource(server.url('/nope.img').replace('://', '://bob:pa@ss@'))).show(),
    );
    expect(JSON.stringify((err as ImageNotFound).toJSON())).not.toMatch(/pa@ss|ss@/);
    const req = server.requests.filter((r) => r.path === '/nope.img').pop();
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from('bob:pa@ss').toString('base64')}`);
  });

  it('sends a per-request bearer token, which wins over the cache credentials and the URL', async () => {
    server.route('/bearer.img', { body });
    const source = await resolveSource(server.url('/bearer.img').replace('://', '://u:p@'), {
      http: {
        auth: { type: 'basic', username: 'cache', password: 'pw' },
        authOrigins: [`http://127.0.0.1:${server.port}`],
      },
      auth: { type: 'bearer', token: 'per-request' },
    });
    await readAll((await source.open()).stream);
    const req = server.requests.filter((r) => r.path === '/bearer.img').pop();
    expect(req?.headers.authorization).toBe('Bearer per-request');
  });

  it('sends the cache credentials when the request brings none', async () => {
    server.route('/cacheauth.img', { body });
    const source = await resolveSource(server.url('/cacheauth.img'), {
      http: {
        auth: { type: 'basic', username: 'cache', password: 'pw' },
        authOrigins: [`http://127.0.0.1:${server.port}`],
      },
    });
    await source.show();
    const req = server.requests.filter((r) => r.path === '/cacheauth.img').pop();
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from('cache:pw').toString('base64')}`);
  });
});
