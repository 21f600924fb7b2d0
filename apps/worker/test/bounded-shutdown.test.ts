// Issue 11, open items: a worker's shutdown that a stage ignoring its signal can't hold up; one clean-caches at a
// time on a host, whatever the replicas.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { CacheRegistry, ImageCache, silentLogger } from '@imagecache/core';
import { ImageCacheClient } from '@imagecache/queue';
import { tmpDir, closeServer, listenLocal } from '@imagecache/testing';
import { HostWorker } from '@imagecache/worker';
import { SHARED_REDIS, uniquePrefix } from './harness';

let server: http.Server;
let base = '';
let inFlight = 0;
let maxInFlight = 0;

beforeAll(async () => {
  // HEADs take 300 ms: clean-caches asks each image's size with one.
  server = http.createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.writeHead(200, { 'content-length': '1000' });
      res.end();
    }, 300);
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
});

function replica(masterDir: string, prefix: string): HostWorker {
  const registry = new CacheRegistry().register(
    new ImageCache({ name: 'instance', masterDir, forceRaw: false }),
  );
  return new HostWorker({
    host: 'h1',
    registry,
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    sweepIntervalSeconds: 0,
    lockDurationMs: 5000,
    logger: silentLogger,
  });
}

describe('clean-caches', () => {
  it('runs one at a time across replicas', async () => {
    const prefix = uniquePrefix();
    const root = tmpDir('imagecache-cc-');
    const masterDir = path.join(root, 'instance');
    const workers = [replica(masterDir, prefix), replica(masterDir, prefix)];
    for (const w of workers) await w.start();
    const client = new ImageCacheClient({
      redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
      pollIntervalMs: 300,
    });
    try {
      maxInFlight = 0;
      await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          client.cleanUpCaches({ host: 'h1', directory: root, images: [{ href: `${base}/img${i}` }] }),
        ),
      );
      expect(maxInFlight).toBe(1);
    } finally {
      await client.close();
      await Promise.all(workers.map((w) => w.close(1000)));
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('shutdown', () => {
  it('is not held up by a stage that ignores its cancel (the clean-up lock wait)', async () => {
    const prefix = uniquePrefix();
    const root = tmpDir('imagecache-sd-');
    const masterDir = path.join(root, 'instance');
    const worker = replica(masterDir, prefix);
    await worker.start();
    // Another process holds the folder's clean-up lock (fresh: not taken over for 10 s).
    const lock = path.join(masterDir, '.imagecache-locks', '.cleanup.lock');
    fs.mkdirSync(lock, { recursive: true });
    const refresh = setInterval(() => fs.utimesSync(lock, new Date(), new Date()), 1000);
    const client = new ImageCacheClient({
      redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
      pollIntervalMs: 300,
    });
    try {
      const waiting = client.cleanUp({ host: 'h1', cache: 'instance' }).catch((e: unknown) => e);
      // the job is taken at once, and waits on the lock
      await new Promise((r) => setTimeout(r, 1000));
      const started = Date.now();
      await worker.close(300);
      expect(Date.now() - started).toBeLessThan(8000);
      void waiting;
    } finally {
      clearInterval(refresh);
      fs.rmSync(lock, { recursive: true, force: true });
      await client.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);
});
