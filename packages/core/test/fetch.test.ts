import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { masterName } from '@imagecache/core';
import { ImageChecksumError, ImageDownloadFailed, ImageNotFound } from '@imagecache/errors';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { ino, masters, newCache, workLeft } from './helpers';

const data = randomBytes(3 * 1024 * 1024 + 123);
const sha256 = createHash('sha256').update(data).digest('hex');
const past = new Date(Date.now() - 3600_000);
let server: ImageServer;

beforeEach(async () => {
  server = await startImageServer();
  server.route('/disk.img', { body: data, lastModified: past });
});
afterEach(() => server.close());

describe('fetchImage', () => {
  it('downloads on a miss and hard-links the master, then hits without a download', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    const first = await cache.fetchImage(href, dest('a.img'));
    expect(first.cacheHit).toBe(false);
    expect(first.masterPath).toBe(path.join(cache.masterDir, masterName(href, undefined, false)));
    expect(first.checksum).toEqual({ algo: 'sha256', value: sha256 });
    expect(first.size).toBe(data.length);
    expect(first.bytesDownloaded).toBe(data.length);
    expect(first.placedBy).toBe('link');
    expect(fs.readFileSync(dest('a.img')).equals(data)).toBe(true);
    expect(ino(dest('a.img'))).toBe(ino(first.masterPath!));
    expect(fs.statSync(first.masterPath!).nlink).toBe(2);
    // No master yet: the source was asked with the GET itself (its headers), no HEAD first, as Ironic does.
    expect(server.count('HEAD')).toBe(0);
    expect(first.durations.resolve).toBeGreaterThan(0);

    const again = await cache.fetchImage(href, dest('a.img'));
    expect(again).toMatchObject({ cacheHit: true, placedBy: 'already', bytesDownloaded: 0 });
    const other = await cache.fetchImage(href, dest('b.img'));
    expect(other).toMatchObject({
      cacheHit: true,
      placedBy: 'link',
      checksum: { algo: 'sha256', value: sha256 },
    });
    expect(ino(dest('b.img'))).toBe(ino(first.masterPath!));
    expect(server.count('GET')).toBe(1);
    // A master there: each hit asks with HEAD whether it is still fresh.
    expect(server.count('HEAD')).toBe(2);
    expect(workLeft(cache)).toEqual([]);
  });

  it('names masters as Ironic does, with .converted when raw conversion is asked', () => {
    expect(masterName('http://127.0.0.1:8080/ubuntu.qcow2', undefined, false)).toBe(
      '555bb464-6289-5d7b-ab3a-88416e1c9188',
    );
    expect(masterName('http://x/y', undefined, true)).toMatch(/\.converted$/);
  });

  it('fetches again when the image changed upstream, keeps it when Last-Modified equals the mtime', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    const first = await cache.fetchImage(href, dest('a.img'));
    const mtime = fs.statSync(first.masterPath!).mtime;
    server.route('/disk.img', {
      body: data,
      lastModified: new Date(Math.floor(mtime.getTime() / 1000) * 1000),
    });
    // A master whose mtime changed is not the one published: it is taken for an adopted one (its metadata
    // gone), which the caller's checksum verifies once.
    fs.utimesSync(first.masterPath!, mtime, new Date(Math.floor(mtime.getTime() / 1000) * 1000));
    fs.rmSync(cache.folder.metaPath(path.basename(first.masterPath!)));
    expect((await cache.fetchImage(href, dest('a.img'), { expectedChecksum: sha256 })).cacheHit).toBe(true);
    expect(server.count('GET')).toBe(1);

    const changed = randomBytes(1000);
    server.route('/disk.img', { body: changed, lastModified: new Date(Date.now() + 60_000) });
    const r = await cache.fetchImage(href, dest('a.img'));
    expect(r.cacheHit).toBe(false);
    expect(fs.readFileSync(dest('a.img')).equals(changed)).toBe(true);
    expect(ino(dest('a.img'))).toBe(ino(r.masterPath!));
    expect(masters(cache)).toHaveLength(1);
  });

  it('fetches again when the server gives no Last-Modified', async () => {
    const { cache, dest } = newCache();
    server.route('/nolm.img', { body: data });
    await cache.fetchImage(server.url('/nolm.img'), dest('a.img'));
    const r = await cache.fetchImage(server.url('/nolm.img'), dest('a.img'));
    expect(r.cacheHit).toBe(false);
    expect(server.count('GET', '/nolm.img')).toBe(2);
  });

  it('replaces a destination that no longer is the master, atomically', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    const first = await cache.fetchImage(href, dest('a.img'));
    fs.rmSync(dest('a.img'));
    fs.writeFileSync(dest('a.img'), 'someone else wrote this');
    const r = await cache.fetchImage(href, dest('a.img'));
    expect(r).toMatchObject({ cacheHit: true, placedBy: 'link' });
    expect(ino(dest('a.img'))).toBe(ino(first.masterPath!));
    expect(fs.readdirSync(path.dirname(dest('a.img')))).toEqual(['a.img']);
  });

  it('never caches a no-store image', async () => {
    const { cache, dest } = newCache();
    server.route('/nostore.img', {
      body: data,
      lastModified: past,
      headers: { 'cache-control': 'private, no-store' },
    });
    const r = await cache.fetchImage(server.url('/nostore.img'), dest('a.img'));
    expect(r.masterPath).toBeUndefined();
    expect(masters(cache)).toEqual([]);
    expect(fs.readFileSync(dest('a.img')).equals(data)).toBe(true);
    expect(fs.statSync(dest('a.img')).nlink).toBe(1);
  });

  it('copies a file:// image without linking the original, and caches nothing', async () => {
    const { cache, dest, root } = newCache();
    const original = path.join(root, 'original.img');
    fs.writeFileSync(original, data);
    const r = await cache.fetchImage(`file://${original}`, dest('a.img'));
    expect(r.cacheHit).toBe(false);
    expect(ino(dest('a.img'))).not.toBe(ino(original));
    expect(fs.statSync(original).nlink).toBe(1);
    expect(fs.readFileSync(dest('a.img')).equals(data)).toBe(true);
    expect(masters(cache)).toEqual([]);
  });

  it('verifies the checksum while streaming, in every form', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    const md5 = createHash('md5').update(data).digest('hex');
    expect(
      (await cache.fetchImage(href, dest('a'), { expectedChecksum: `sha256:${sha256.toUpperCase()}` }))
        .checksum,
    ).toEqual({ algo: 'sha256', value: sha256 });
    fs.rmSync(cache.masterDir, { recursive: true });
    const fresh = newCache();
    const r = await fresh.cache.fetchImage(href, fresh.dest('a'), { expectedChecksum: md5 });
    expect(r.checksum).toEqual({ algo: 'md5', value: md5 });
    server.route('/disk.img.sha256sum', { body: `# sums\n${sha256}  other.img\n${sha256}  disk.img\n` });
    const third = newCache();
    const u = await third.cache.fetchImage(href, third.dest('a'), {
      expectedChecksum: server.url('/disk.img.sha256sum'),
    });
    expect(u.checksum?.value).toBe(sha256);
  });

  it('refuses a wrong checksum and leaves the cache and destination as they were', async () => {
    const { cache, dest } = newCache();
    fs.writeFileSync(dest('a.img'), 'old');
    const err = await cache
      .fetchImage(server.url('/disk.img'), dest('a.img'), { expectedChecksum: 'sha256:' + '0'.repeat(64) })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(err.code).toBe('IMAGE_CHECKSUM_ERROR');
    expect(masters(cache)).toEqual([]);
    expect(workLeft(cache)).toEqual([]);
    expect(fs.readFileSync(dest('a.img'), 'utf8')).toBe('old');
  });

  it('treats a master whose recorded checksum differs from the one asked as stale', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    await cache.fetchImage(href, dest('a'));
    const err = await cache.fetchImage(href, dest('b'), { expectedChecksum: '1'.repeat(64) }).catch((e) => e);
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(server.count('GET')).toBe(2);
    // The caller was wrong: the good master is still there, still linked.
    expect(masters(cache)).toHaveLength(1);
    expect(fs.statSync(dest('a')).nlink).toBe(2);
    expect((await cache.fetchImage(href, dest('c'))).cacheHit).toBe(true);
  });

  it('maps HTTP errors to typed errors and writes nothing', async () => {
    const { cache, dest } = newCache();
    server.route('/gone.img', { status: 404 });
    server.route('/broken.img', { status: 500 });
    await expect(cache.fetchImage(server.url('/gone.img'), dest('a'))).rejects.toBeInstanceOf(ImageNotFound);
    const e = await cache.fetchImage(server.url('/broken.img'), dest('a')).catch((x) => x);
    expect(e).toBeInstanceOf(ImageDownloadFailed);
    expect(e.retryable).toBe(true);
    expect(fs.existsSync(dest('a'))).toBe(false);
    expect(masters(cache)).toEqual([]);
    expect(workLeft(cache)).toEqual([]);
  });

  it('has set the folder up when a fetch fails at the HEAD: nothing of the call goes on after it', async () => {
    const { cache, dest } = newCache();
    // Leftovers in the work area make the folder's first-use sweep, run beside the HEAD, the slower of the two.
    fs.mkdirSync(cache.folder.workDir, { recursive: true });
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(cache.folder.workDir, `leftover-${i}`), '');
    // A master there (one the source no longer has): asked with HEAD before the lock, beside the set-up (a cold
    // miss asks only once the folder is set up).
    fs.writeFileSync(
      path.join(cache.masterDir, masterName(server.url('/gone.img'), undefined, false)),
      'old',
    );
    server.route('/gone.img', { status: 404 });
    await expect(cache.fetchImage(server.url('/gone.img'), dest('a'))).rejects.toBeInstanceOf(ImageNotFound);
    expect(server.count('HEAD', '/gone.img')).toBe(1);
    expect(workLeft(cache)).toEqual([]);
    expect(fs.existsSync(dest('a'))).toBe(false);
  });

  it('resumes an interrupted download with Range and gets every byte right', async () => {
    const { cache, dest } = newCache();
    server.route('/flaky.img', {
      body: data,
      lastModified: past,
      etag: '"v1"',
      ranges: true,
      truncateAt: 1_300_000,
    });
    const r = await cache.fetchImage(server.url('/flaky.img'), dest('a'), { expectedChecksum: sha256 });
    expect(fs.readFileSync(dest('a')).equals(data)).toBe(true);
    const gets = server.requests.filter((q) => q.method === 'GET');
    // Each response is cut after 1.3 MB (fewer may arrive before the reset): at least 3 GETs, all resumed.
    expect(gets.length).toBeGreaterThanOrEqual(3);
    for (const g of gets.slice(1)) {
      expect(g.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
      expect(g.headers['if-range']).toBe('"v1"');
    }
    expect(r.bytesDownloaded).toBe(data.length);
  });

  it('keeps a partial download when asked, and the next fetch continues it with Range', async () => {
    const { cache, dest } = newCache({ downloadRetries: 0 });
    const big = randomBytes(10 << 20);
    server.route('/big.img', {
      body: big,
      lastModified: past,
      etag: '"b1"',
      ranges: true,
      truncateAt: 9 << 20,
    });
    const e = await cache
      .fetchImage(server.url('/big.img'), dest('a'), { keepPartial: true })
      .catch((x) => x);
    expect(e.code).toBe('IMAGE_DOWNLOAD_FAILED');
    expect(workLeft(cache)).toHaveLength(1);
    expect(masters(cache)).toEqual([]);
    server.route('/big.img', { body: big, lastModified: past, etag: '"b1"', ranges: true });
    const r = await cache.fetchImage(server.url('/big.img'), dest('a'), {
      expectedChecksum: createHash('sha256').update(big).digest('hex'),
    });
    // Everything received before the failure was written and hashed: only the rest crosses the network.
    // (How much of the 9 MiB arrives before the reset varies; at least the first block does.)
    const kept = big.length - r.bytesDownloaded;
    expect(kept).toBeGreaterThan(0);
    expect(server.requests.filter((q) => q.method === 'GET').pop()!.headers.range).toBe(`bytes=${kept}-`);
    // The first fetch's GET and the second's ranged one: with a partial there, the second asked with HEAD first,
    // not with a GET from byte 0 that the resume would have dropped.
    expect(server.requests.map((q) => q.method)).toEqual(['GET', 'HEAD', 'GET']);
    expect(fs.readFileSync(dest('a')).equals(big)).toBe(true);
    expect(workLeft(cache)).toEqual([]);
  });

  it('fails cleanly when the body stops short and retries are used up', async () => {
    const { cache, dest } = newCache({ downloadRetries: 1 });
    server.route('/short.img', { body: data, lastModified: past, truncateAt: 1000 });
    const e = await cache.fetchImage(server.url('/short.img'), dest('a')).catch((x) => x);
    expect(e).toBeInstanceOf(ImageDownloadFailed);
    expect(server.count('GET', '/short.img')).toBe(2);
    expect(masters(cache)).toEqual([]);
    expect(workLeft(cache)).toEqual([]);
    expect(fs.existsSync(dest('a'))).toBe(false);
  });

  it('downloads once for many concurrent requests of one image', async () => {
    const { cache, dest } = newCache();
    server.route('/slow.img', { body: data, lastModified: past, delayMs: 100 });
    const href = server.url('/slow.img');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => cache.fetchImage(href, dest(`d${i}`))),
    );
    expect(server.count('GET', '/slow.img')).toBe(1);
    // The nine that waited for the lock found the master under it: a HEAD each, never a GET dropped unread.
    expect(server.count('HEAD', '/slow.img')).toBe(9);
    expect(results.filter((r) => !r.cacheHit)).toHaveLength(1);
    const inode = ino(results[0]!.masterPath!);
    for (let i = 0; i < 10; i++) expect(ino(dest(`d${i}`))).toBe(inode);
    expect(fs.statSync(results[0]!.masterPath!).nlink).toBe(11);
  });

  it('keeps two masters for one href with and without raw conversion', async () => {
    const { cache, dest } = newCache();
    const href = server.url('/disk.img');
    await cache.fetchImage(href, dest('a'), { forceRaw: false });
    await cache.fetchImage(href, dest('b'), { forceRaw: true });
    const id = masterName(href, undefined, false);
    expect(masters(cache)).toEqual([id, `${id}.converted`]);
  });

  it('cancels through an AbortSignal and leaves nothing behind', async () => {
    const { cache, dest } = newCache();
    server.route('/stall.img', { body: data, lastModified: past, stallAt: 100_000 });
    const ac = new AbortController();
    const p = cache.fetchImage(server.url('/stall.img'), dest('a'), { signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const e = await p.catch((x) => x);
    expect(e.code).toBe('ABORTED');
    expect(workLeft(cache)).toEqual([]);
    expect(masters(cache)).toEqual([]);
  });
});
