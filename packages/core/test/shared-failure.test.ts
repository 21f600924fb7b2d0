// X4 (issue 11): when a single-flight download fails for good, every caller waiting on it gets that error; the
// retries belong to the one download, not to each waiter (in this process or another).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { ImageDownloadFailed } from '@imagecache/errors';
import { ImageCache } from '@imagecache/core';
import { closeHttpConnections } from '@imagecache/sources';
import { masters, newCache, workLeft } from './helpers';
import { closeServer, listenLocal } from '@imagecache/testing';

let server: http.Server;
let base = '';
let gets = 0;
let failing = true;
const body = Buffer.alloc(4096, 7);

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.method === 'GET') gets++;
    if (req.method === 'GET' && failing) return res.writeHead(500).end('no');
    res.writeHead(200, { 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
  await closeHttpConnections();
});

describe('a failed single-flight download', () => {
  it('50 waiters, two processes: at most downloadRetries + 1 GETs, all get IMAGE_DOWNLOAD_FAILED promptly', async () => {
    gets = 0;
    failing = true;
    const retries = 2;
    const { cache, root, dest } = newCache({ downloadRetries: retries, retryDelayMs: 200 });
    // A second engine on the same folder: another process as far as the locks are concerned.
    const other = new ImageCache({
      masterDir: cache.masterDir,
      forceRaw: false,
      downloadRetries: retries,
      retryDelayMs: 200,
    });
    const href = `${base}/disk.img`;
    const started = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? other : cache).fetchImage(href, dest(`d${i}`)).then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    );
    const elapsed = Date.now() - started;
    for (const e of outcomes) {
      expect(e).toBeInstanceOf(ImageDownloadFailed);
      expect((e as ImageDownloadFailed).code).toBe('IMAGE_DOWNLOAD_FAILED');
      expect((e as Error).message).toMatch(/HTTP 500/);
    }
    expect(gets).toBeLessThanOrEqual(retries + 1);
    // the retries of one download (200 + 400 ms of back-off), not of fifty
    expect(elapsed).toBeLessThan(5000);
    // waiters are told the download they waited for failed; their error is final
    const waiters = outcomes.filter((e) => (e as ImageDownloadFailed).details.sharedFailure === true);
    expect(waiters.length).toBeGreaterThanOrEqual(40);
    for (const w of waiters) expect((w as ImageDownloadFailed).retryable).toBe(false);
    expect(masters(cache)).toEqual([]);
    expect(workLeft(cache)).toEqual([]);
    for (let i = 0; i < 50; i++) expect(fs.existsSync(dest(`d${i}`))).toBe(false);

    // A later fetch is not answered by that old failure: it downloads again, and works once the source does.
    failing = false;
    const r = await cache.fetchImage(href, dest('later'));
    expect(r.cacheHit).toBe(false);
    expect(fs.readFileSync(dest('later')).equals(body)).toBe(true);
    expect(
      fs.readdirSync(path.join(cache.masterDir, '.imagecache-locks')).filter((f) => f.endsWith('.failed')),
    ).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
