import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CacheRegistry, ImageCache, silentLogger } from '@imagecache/core';
import { OperationAborted } from '@imagecache/errors';
import { Queue } from 'bullmq';
import {
  CancelRecord,
  connectRedis,
  ImageCacheClient,
  jobIdFor,
  JOB_NAMES,
  queueNames,
} from '@imagecache/queue';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { HostWorker } from '@imagecache/worker';
import { processesMentioning, SHARED_REDIS, startOwnRedis, uniquePrefix } from './harness';

const MiB = 1 << 20;
let server: ImageServer;
beforeAll(async () => {
  server = await startImageServer();
});
afterAll(() => server.close());

/** A host with one cache, served by `replicas` HostWorkers in this process. */
async function host(redis: string, opts: { forceRaw?: boolean; replicas?: number } = {}) {
  const prefix = uniquePrefix();
  const root = tmpDir('imagecache-q-');
  fs.mkdirSync(path.join(root, 'dest'));
  const masterDir = path.join(root, 'instance');
  const workers: HostWorker[] = [];
  for (let i = 0; i < (opts.replicas ?? 1); i++) {
    const registry = new CacheRegistry().register(
      new ImageCache({ name: 'instance', masterDir, forceRaw: opts.forceRaw ?? false, cacheSize: 1e12 }),
    );
    const w = new HostWorker({
      host: 'h1',
      registry,
      redis: { mode: 'standalone', url: redis, prefix },
      sweepIntervalSeconds: 0,
      lockDurationMs: 5000,
      logger: silentLogger,
    });
    await w.start();
    workers.push(w);
  }
  const client = new ImageCacheClient({
    redis: { mode: 'standalone', url: redis, prefix },
    pollIntervalMs: 300,
  });
  return {
    prefix,
    masterDir,
    dest: (n: string) => path.join(root, 'dest', n),
    client,
    close: async () => {
      await client.close();
      await Promise.all(workers.map((w) => w.close(1000)));
    },
  };
}

describe('clean-up through the queue', () => {
  it('never runs two clean-ups of one folder at once, across replicas', async () => {
    const h = await host(SHARED_REDIS, { replicas: 2 });
    try {
      fs.mkdirSync(h.masterDir, { recursive: true });
      // Named as masters (anything else is foreign and never evicted); a block each (sizes are allocated bytes).
      const name = (i: number) => `00000000-0000-5000-8000-${String(i).padStart(12, '0')}`;
      for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(h.masterDir, name(i)), Buffer.alloc(4096, 1));
      const results = (await Promise.all(
        Array.from({ length: 50 }, () => h.client.cleanUp({ host: 'h1', cache: 'instance', amount: 16_000 })),
      )) as unknown as { startedAt: number; finishedAt: number; freed: number }[];
      const spans = results.map((r) => [r.startedAt, r.finishedAt] as const).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
      expect(results.reduce((n, r) => n + r.freed, 0)).toBe(200 * 4096);
    } finally {
      await h.close();
    }
  }, 60_000);
});

describe('a cancelled job that comes back', () => {
  it('is not run: a failover that lost its removal (the cancel record survived) gets ABORTED, no GET', async () => {
    const h = await host(SHARED_REDIS);
    const redis = connectRedis({ mode: 'standalone', url: SHARED_REDIS, prefix: h.prefix }, 'producer');
    const queueName = queueNames.fetch('h1', 'instance');
    const queue = new Queue(queueName, { connection: redis, prefix: h.prefix });
    try {
      server.route('/revenant.img', { body: randomBytes(64 * 1024) });
      const jobId = jobIdFor(queueName, 'revenant');
      await queue.waitUntilReady();
      // The cancel was recorded (and its removal lost): the job is back in the queue as it was added.
      await new CancelRecord(redis, h.prefix, false).record(jobId, 'cancelled by the caller');
      await queue.add(
        JOB_NAMES.fetch,
        { href: server.url('/revenant.img'), dest: h.dest('revenant') },
        { jobId, attempts: 5 },
      );
      const err = await h.client.waitFor(jobId).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OperationAborted);
      const job = await queue.getJob(jobId);
      expect(await job?.getState()).toBe('failed');
      expect(job?.attemptsMade).toBe(1); // failed for good, not retried
      expect(server.count('GET', '/revenant.img')).toBe(0);
      expect(server.count('HEAD', '/revenant.img')).toBe(0);
      expect(fs.existsSync(h.dest('revenant'))).toBe(false);
    } finally {
      await queue.close();
      redis.disconnect();
      await h.close();
    }
  }, 30_000);
});

describe('cancelling a fetch', () => {
  it('kills qemu-img and removes the work in progress', async () => {
    const fixtures = tmpDir();
    const raw = path.join(fixtures, 'big.raw');
    const fd = fs.openSync(raw, 'w');
    for (let i = 0; i < 160; i++) fs.writeSync(fd, randomBytes(MiB));
    fs.closeSync(fd);
    execFileSync('qemu-img', [
      'convert',
      '-c',
      '-f',
      'raw',
      '-O',
      'qcow2',
      raw,
      path.join(fixtures, 'big.qcow2'),
    ]);
    server.route('/big.qcow2', { file: path.join(fixtures, 'big.qcow2'), lastModified: new Date(0) });
    const h = await host(SHARED_REDIS, { forceRaw: true });
    try {
      const ac = new AbortController();
      let sawQemu = false;
      const err = await h.client
        .fetchImage({
          host: 'h1',
          cache: 'instance',
          href: server.url('/big.qcow2'),
          dest: h.dest('big'),
          signal: ac.signal,
          onProgress: (p) => {
            if (p.stage !== 'convert' || ac.signal.aborted) return;
            // Cancel as soon as qemu-img is seen at work.
            const look = setInterval(() => {
              sawQemu = processesMentioning(h.masterDir).some((l) => l.includes('qemu-img'));
              if (sawQemu || ac.signal.aborted) {
                clearInterval(look);
                ac.abort();
              }
            }, 5);
          },
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(OperationAborted);
      expect(sawQemu).toBe(true);
      let left: string[] = ['?'];
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = [
          ...processesMentioning(h.masterDir),
          ...fs.readdirSync(path.join(h.masterDir, '.imagecache-work')),
        ];
      }
      expect(left).toEqual([]);
      expect(fs.existsSync(h.dest('big'))).toBe(false);
    } finally {
      await h.close();
    }
  }, 60_000);
});

describe('a Redis restart', () => {
  it('is survived: workers reconnect and the call in flight settles', async () => {
    const redis = await startOwnRedis();
    const h = await host(redis.url);
    try {
      const data = randomBytes(2 * MiB);
      server.route('/slow.img', { body: data, lastModified: new Date(0), delayMs: 1500 });
      const p = h.client.fetchImage({
        host: 'h1',
        cache: 'instance',
        href: server.url('/slow.img'),
        dest: h.dest('slow'),
      });
      await new Promise((r) => setTimeout(r, 500));
      await redis.restart();
      const r = await p;
      expect(r.cacheHit).toBe(false);
      expect(fs.readFileSync(h.dest('slow')).equals(data)).toBe(true);
      // And the next call goes through the restarted Redis as usual.
      const again = await h.client.fetchImage({
        host: 'h1',
        cache: 'instance',
        href: server.url('/slow.img'),
        dest: h.dest('again'),
      });
      expect(again.cacheHit).toBe(true);
    } finally {
      await h.close();
      redis.stop();
    }
  }, 60_000);
});
