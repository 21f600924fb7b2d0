// Checksum files go through the sources' HTTP stack (the cache's TLS settings, timeouts and redirect rules).
import { ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import { closeHttpConnections, fetchChecksumFile } from '@imagecache/sources';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { createServer } from 'node:net';

const SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA512 =
  'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';
const SUMS = `${'a'.repeat(64)}  other.qcow2\n${SHA256}  image.qcow2\n`;

let server: ImageServer;
beforeAll(async () => {
  server = await startImageServer();
});
// The test server answers a delayed route from a timer even after close(): let those timers run first.
let delayedUntil = 0;
function delayed(path: string, ms: number): void {
  server.route(path, { body: SUMS, delayMs: ms });
  delayedUntil = Math.max(delayedUntil, Date.now() + ms);
}
afterAll(async () => {
  await new Promise((r) => setTimeout(r, Math.max(0, delayedUntil - Date.now()) + 50));
  await server.close();
  await closeHttpConnections();
});

async function failure(p: Promise<unknown>): Promise<ImageDownloadFailed> {
  try {
    await p;
  } catch (err) {
    return err as ImageDownloadFailed;
  }
  throw new Error('did not fail');
}

describe('fetchChecksumFile', () => {
  it('fetches a GNU checksum file and finds the image', async () => {
    server.route('/ok/SHA256SUMS', { body: SUMS });
    await expect(fetchChecksumFile(server.url('/ok/SHA256SUMS'), 'image.qcow2')).resolves.toEqual({
      algo: 'sha256',
      value: SHA256,
    });
  });

  it('passes algo, allowMd5 and headers on', async () => {
    server.route('/multi/CHECKSUM', { body: `SHA256 (i.img) = ${SHA256}\nSHA512 (i.img) = ${SHA512}\n` });
    const url = server.url('/multi/CHECKSUM');
    await expect(fetchChecksumFile(url, 'i.img')).resolves.toEqual({ algo: 'sha512', value: SHA512 });
    await expect(
      fetchChecksumFile(url, 'i.img', { algo: 'sha256', headers: { 'x-test': 'yes' } }),
    ).resolves.toEqual({ algo: 'sha256', value: SHA256 });
    const last = server.requests.filter((r) => r.path === '/multi/CHECKSUM').at(-1);
    expect(last?.headers['x-test']).toBe('yes');
  });

  it('follows redirects', async () => {
    server.route('/r/final', { body: SUMS });
    server.route('/r/2', { redirectTo: '/r/final' });
    server.route('/r/1', { redirectTo: server.url('/r/2') });
    await expect(fetchChecksumFile(server.url('/r/1'), 'image.qcow2')).resolves.toEqual({
      algo: 'sha256',
      value: SHA256,
    });
    expect(server.count('GET', '/r/final')).toBe(1);
  });

  it('follows at most 10 redirects', async () => {
    for (let i = 0; i < 12; i++) server.route(`/chain/${i}`, { redirectTo: `/chain/${i + 1}` });
    server.route('/chain/12', { body: SUMS });
    server.route('/chain10/10', { body: SUMS });
    for (let i = 0; i < 10; i++) server.route(`/chain10/${i}`, { redirectTo: `/chain10/${i + 1}` });
    await expect(fetchChecksumFile(server.url('/chain10/0'), 'image.qcow2')).resolves.toMatchObject({
      value: SHA256,
    });
    const err = await failure(fetchChecksumFile(server.url('/chain/0'), 'image.qcow2'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(server.url('/chain/0'));
    expect(server.count('GET', '/chain/12')).toBe(0);
  });

  it('404 → permanent ImageDownloadFailed naming the checksum URL', async () => {
    const url = server.url('/missing/SHA256SUMS');
    const err = await failure(fetchChecksumFile(url, 'image.qcow2', { href: 'http://h/image.qcow2' }));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.code).toBe('IMAGE_DOWNLOAD_FAILED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(url);
    expect(err.message).toContain('404');
    expect(err.details).toMatchObject({ status: 404, checksumUrl: url, href: 'http://h/image.qcow2' });
  });

  it.each([
    [500, true],
    [503, true],
    [429, true],
    [403, false],
    [410, false],
    [401, false],
  ])('HTTP %i → ImageDownloadFailed retryable=%s', async (status, retryable) => {
    server.route(`/status/${status}`, { status, body: 'no' });
    const err = await failure(fetchChecksumFile(server.url(`/status/${status}`), 'image.qcow2'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(retryable);
    expect(err.details).toMatchObject({ status });
  });

  it('the file without the entry → permanent ImageDownloadFailed naming file and URL', async () => {
    server.route('/nf/SUMS', { body: SUMS });
    const err = await failure(fetchChecksumFile(server.url('/nf/SUMS'), 'image.raw'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('image.raw');
    expect(err.message).toContain(server.url('/nf/SUMS'));
  });

  it('refuses a file over the size cap, announced or not', async () => {
    const big = `${SHA256}  image.qcow2\n` + '#'.repeat(1024 * 1024);
    server.route('/big/announced', { body: big });
    server.route('/big/chunked', { body: big, noContentLength: true });
    for (const p of ['/big/announced', '/big/chunked']) {
      const err = await failure(fetchChecksumFile(server.url(p), 'image.qcow2'));
      expect(err).toBeInstanceOf(ImageDownloadFailed);
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/too large/);
    }
    // within a custom cap
    server.route('/big/small', { body: SUMS });
    await expect(
      fetchChecksumFile(server.url('/big/small'), 'image.qcow2', { maxBytes: SUMS.length }),
    ).resolves.toBeTruthy();
    const err = await failure(
      fetchChecksumFile(server.url('/big/small'), 'image.qcow2', { maxBytes: SUMS.length - 1 }),
    );
    expect(err.message).toMatch(/too large/);
  });

  it('sends URL credentials as Basic auth and never shows them', async () => {
    const url = `http://bob:hunter2@127.0.0.1:${server.port}/auth/SUMS?token=abc123`;
    server.route('/auth/SUMS', { body: SUMS });
    await expect(fetchChecksumFile(url, 'image.qcow2')).resolves.toMatchObject({ value: SHA256 });
    const req = server.requests.find((r) => r.path.startsWith('/auth/SUMS'));
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from('bob:hunter2').toString('base64')}`);

    const missing = `http://bob:hunter2@127.0.0.1:${server.port}/auth/none?token=abc123`;
    const err = await failure(fetchChecksumFile(missing, 'image.qcow2'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    const text = err.message + JSON.stringify(err.toJSON());
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('abc123');
    expect(err.message).toContain(`http://***@127.0.0.1:${server.port}/auth/none?token=***`);

    const notFound = await failure(fetchChecksumFile(url, 'nothere.img'));
    expect(notFound.message + JSON.stringify(notFound.toJSON())).not.toMatch(/hunter2|abc123/);
  });

  it('does not carry credentials across a redirect to another origin', async () => {
    const other = await startImageServer();
    try {
      other.route('/SUMS', { body: SUMS });
      server.route('/away/SUMS', { redirectTo: other.url('/SUMS') });
      const url = `http://bob:hunter2@127.0.0.1:${server.port}/away/SUMS`;
      await expect(fetchChecksumFile(url, 'image.qcow2')).resolves.toMatchObject({ value: SHA256 });
      expect(server.requests.find((r) => r.path === '/away/SUMS')?.headers.authorization).toMatch(/^Basic /);
      expect(other.requests).toHaveLength(1);
      expect(other.requests[0]?.headers.authorization).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('an explicit authorization header wins over URL credentials', async () => {
    server.route('/auth2/SUMS', { body: SUMS });
    await fetchChecksumFile(`http://u:p@127.0.0.1:${server.port}/auth2/SUMS`, 'image.qcow2', {
      headers: { Authorization: 'Bearer xyz' },
    });
    const req = server.requests.find((r) => r.path === '/auth2/SUMS');
    expect(req?.headers.authorization).toBe('Bearer xyz');
  });

  it('a refused connection → retryable ImageDownloadFailed', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await failure(fetchChecksumFile(`http://127.0.0.1:${port}/SUMS`, 'image.qcow2'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/connection refused/);
    expect(err.details.reason).toBe('ECONNREFUSED');
  });

  it('a timeout → retryable ImageDownloadFailed', async () => {
    delayed('/slow/SUMS', 1500);
    const err = await failure(
      fetchChecksumFile(server.url('/slow/SUMS'), 'image.qcow2', { http: { inactivityTimeoutMs: 100 } }),
    );
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
  });

  it('an abort → OperationAborted', async () => {
    delayed('/abort/SUMS', 600);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const err = await failure(
      fetchChecksumFile(server.url('/abort/SUMS'), 'image.qcow2', { signal: ac.signal }),
    );
    expect(err).toBeInstanceOf(OperationAborted);
    const pre = await failure(
      fetchChecksumFile(server.url('/ok/SHA256SUMS'), 'image.qcow2', { signal: AbortSignal.abort() }),
    );
    expect(pre).toBeInstanceOf(OperationAborted);
  });

  it('refuses non-http URLs', async () => {
    const err = await failure(fetchChecksumFile('ftp://h/SUMS', 'image.qcow2'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
  });
});
