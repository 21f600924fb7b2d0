// What a cache reports to its listeners (issue 13): fetches, evictions and usage, as the worker's metrics read them.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { CacheUsage, EvictEvent, FetchEvent } from '@imagecache/core';
import { ImageNotFound, OperationAborted } from '@imagecache/errors';
import { closeHttpConnections } from '@imagecache/sources';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { masters, newCache, workLeft } from './helpers';

const MiB = 1 << 20;
const past = new Date('2024-01-01T00:00:00Z');
let server: ImageServer;

beforeAll(async () => {
  server = await startImageServer();
  server.route('/a.img', { body: randomBytes(MiB), lastModified: past });
  server.route('/b.img', { body: randomBytes(MiB), lastModified: past });
  server.route('/gone.img', { status: 404 });
});
afterAll(async () => {
  await server.close();
  await closeHttpConnections();
});

function record(cache: ReturnType<typeof newCache>['cache']) {
  const seen = { fetch: [] as FetchEvent[], evict: [] as EvictEvent[], usage: [] as CacheUsage[] };
  const offs = [
    cache.on('fetch', (e) => seen.fetch.push(e)),
    cache.on('evict', (e) => seen.evict.push(e)),
    cache.on('usage', (e) => seen.usage.push(e)),
  ];
  return { seen, stop: () => offs.forEach((off) => off()) };
}

describe('cache events', () => {
  it('a miss, a hit and a failure: each fetch that ends is reported once, with its result or error', async () => {
    const { cache, root, dest } = newCache({ name: 'ev' });
    const { seen } = record(cache);
    const miss = await cache.fetchImage(server.url('/a.img'), dest('one'));
    const hit = await cache.fetchImage(server.url('/a.img'), dest('two'));
    const err = await cache.fetchImage(server.url('/gone.img'), dest('three')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFound);

    expect(seen.fetch.map((e) => e.outcome)).toEqual(['miss', 'hit', 'error']);
    const [m, h, f] = seen.fetch;
    expect(m).toEqual({ cache: 'ev', outcome: 'miss', result: miss });
    expect(miss.bytesDownloaded).toBe(MiB);
    expect(miss.durations.download).toBeGreaterThanOrEqual(0);
    expect(h).toEqual({ cache: 'ev', outcome: 'hit', result: hit });
    expect(f).toMatchObject({ cache: 'ev', outcome: 'error', error: err, code: 'IMAGE_NOT_FOUND' });
    expect(f).toMatchObject({ durations: { resolve: expect.any(Number), total: expect.any(Number) } });
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('every eviction names the master, its allocated size and the reason; usage follows each clean-up', async () => {
    const { cache, root, dest } = newCache({ name: 'ev2', cacheSize: 10 * MiB });
    const a = await cache.fetchImage(server.url('/a.img'), dest('a'));
    const b = await cache.fetchImage(server.url('/b.img'), dest('b'));
    await cache.cleanUp(); // the evict stage's clean-up may still run: wait for the folder to be quiet
    const { seen } = record(cache);
    const before = await cache.usage();
    expect(before).toEqual({ cache: 'ev2', totalSize: 2 * MiB, count: 2 });
    expect(seen.usage).toEqual([before]);

    fs.rmSync(dest('a'));
    fs.rmSync(dest('b'));
    const r = await cache.cleanUp(MiB); // the older of the two is enough
    expect(r.removed).toHaveLength(1);
    const [gone] = r.removed;
    expect(seen.evict).toEqual([{ cache: 'ev2', name: gone!.name, size: MiB, reason: 'amount' }]);
    expect(seen.usage.at(-1)).toEqual({ cache: 'ev2', totalSize: MiB, count: 1 });
    const names = [a, b].map((x) => x.masterPath!.split('/').pop()!);
    expect(masters(cache)).toEqual(names.filter((n) => n !== gone!.name));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a listener that throws never fails the fetch; one removed hears nothing more', async () => {
    const { cache, root, dest } = newCache();
    let heard = 0;
    const off = cache.on('fetch', () => {
      heard += 1;
      throw new Error('listener bug');
    });
    await expect(cache.fetchImage(server.url('/a.img'), dest('x'))).resolves.toMatchObject({
      cacheHit: false,
    });
    off();
    await expect(cache.fetchImage(server.url('/a.img'), dest('y'))).resolves.toMatchObject({
      cacheHit: true,
    });
    expect(heard).toBe(1);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a fetch cancelled before it starts downloading reports the abort as its error', async () => {
    const { cache, root, dest } = newCache({ name: 'ev3' });
    const { seen } = record(cache);
    const ac = new AbortController();
    const p = cache.fetchImage(server.url('/b.img'), dest('z'), {
      signal: ac.signal,
      onProgress: (p) => p.stage === 'wait' && ac.abort(),
    });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationAborted);
    expect(seen.fetch).toMatchObject([
      { cache: 'ev3', outcome: 'error', error: err, code: OperationAborted.code },
    ]);
    expect(masters(cache)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a fetch cancelled between two stages starts no further stage: nothing published, nothing left', async () => {
    const { cache, root, dest } = newCache();
    const ac = new AbortController();
    const stages: string[] = [];
    const err = await cache
      .fetchImage(server.url('/b.img'), dest('v'), {
        signal: ac.signal,
        onProgress: (p) => {
          if (stages.at(-1) !== p.stage) stages.push(p.stage);
          if (p.stage === 'verify') ac.abort();
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationAborted);
    // A cold miss asks its source under the lock, with the download's GET.
    expect(stages).toEqual(['wait', 'resolve', 'download', 'verify']);
    expect(masters(cache)).toEqual([]);
    expect(workLeft(cache)).toEqual([]);
    expect(fs.existsSync(dest('v'))).toBe(false);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
