// The worker's metrics read what the caches report (ImageCache.on): nothing of the engine is patched, and the
// folder's size is the engine's own count. The end-to-end counts through BullMQ are in apps/api/test/fetch.test.ts.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageCache, silentLogger } from '@imagecache/core';
import { closeHttpConnections } from '@imagecache/sources';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { WorkerMetrics } from '../src/metrics';

const MiB = 1 << 20;
let server: ImageServer;

beforeAll(async () => {
  server = await startImageServer();
  server.route('/a.img', { body: randomBytes(MiB), lastModified: new Date(0) });
});
afterAll(async () => {
  await server.close();
  await closeHttpConnections();
});

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('WorkerMetrics', () => {
  it("counts a cache's fetches and evictions from its events, once however often it is watched", async () => {
    const root = tmpDir('imagecache-metrics-');
    const cache = new ImageCache({ name: 'm', masterDir: path.join(root, 'master'), logger: silentLogger });
    const metrics = new WorkerMetrics({ defaultMetrics: false });
    metrics.watchCache(cache);
    metrics.watchCache(cache);
    expect(cache.cleanUp).toBe(ImageCache.prototype.cleanUp); // subscribed, not wrapped

    await cache.fetchImage(server.url('/a.img'), path.join(root, 'one'));
    await cache.fetchImage(server.url('/a.img'), path.join(root, 'two'));
    let text = await metrics.registry.metrics();
    expect(value(text, 'imagecache_fetches_total{cache="m",result="miss"}')).toBe(1);
    expect(value(text, 'imagecache_fetches_total{cache="m",result="hit"}')).toBe(1);
    expect(value(text, 'imagecache_downloaded_bytes_total{cache="m"}')).toBe(MiB);
    expect(value(text, 'imagecache_fetch_stage_duration_seconds_count{cache="m",stage="download"}')).toBe(1);
    expect(value(text, 'imagecache_cache_files{cache="m"}')).toBe(1);
    expect(value(text, 'imagecache_cache_bytes{cache="m"}')).toBe(MiB);

    fs.rmSync(path.join(root, 'one'));
    fs.rmSync(path.join(root, 'two'));
    await cache.cleanUp(1);
    text = await metrics.registry.metrics();
    expect(value(text, 'imagecache_evictions_total{cache="m",reason="amount"}')).toBe(1);
    expect(value(text, 'imagecache_evicted_bytes_total{cache="m",reason="amount"}')).toBe(MiB);
    // The clean-up's report is the fresh total: no second read of the folder needed.
    expect(value(text, 'imagecache_cache_files{cache="m"}')).toBe(0);
    expect(value(text, 'imagecache_cache_bytes{cache="m"}')).toBe(0);

    metrics.unwatch();
    await cache.fetchImage(server.url('/a.img'), path.join(root, 'three'));
    text = await metrics.registry.metrics();
    expect(value(text, 'imagecache_fetches_total{cache="m",result="miss"}')).toBe(1);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
