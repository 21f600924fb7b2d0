import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '@imagecache/api';
import { CacheRegistry, ImageCache, silentLogger } from '@imagecache/core';
import { mountTmpfs, startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { HostWorker, serveMetrics, WorkerMetrics } from '@imagecache/worker';
import { basic, dropPrefix, closedPort, redisConfig, until } from './helpers';

/** The API end to end: a real HostWorker in this process, a real image server, a real Redis. */
const redis = redisConfig();
const HOST = 'node-api';
const AUTH = basic('ops', 'pw');
let root: string;
let server: ImageServer;
let cache: ImageCache;
let worker: HostWorker;
let app: FastifyInstance;
let workerMetrics: string;

const dest = (name: string) => path.join(root, 'dest', name);
const post = (url: string, payload: object) =>
  app.inject({ method: 'POST', url, payload, headers: { authorization: AUTH } });
const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: AUTH } });

beforeAll(async () => {
  root = tmpDir('imagecache-api-');
  fs.mkdirSync(path.join(root, 'dest'));
  server = await startImageServer();
  cache = new ImageCache({
    name: 'instance',
    masterDir: path.join(root, 'masters'),
    forceRaw: false,
    logger: silentLogger,
  });
  const registry = new CacheRegistry({}, silentLogger).register(cache);
  worker = new HostWorker({
    host: HOST,
    registry,
    redis,
    sweepIntervalSeconds: 0,
    logger: silentLogger,
    metricsPort: 0,
  });
  await worker.start();
  workerMetrics = worker.metricsServer!.url;
  app = await buildApi({
    redis,
    hosts: [{ host: HOST, caches: ['instance'] }],
    board: { username: 'ops', password: 'pw' },
    logger: false,
  });
}, 20_000);

afterAll(async () => {
  await app?.close();
  await worker?.close(1000);
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  await dropPrefix(redis.prefix);
});

describe('POST /v1/fetch through a worker', () => {
  const data = randomBytes(3 << 20);

  it('answers 200 with the engine result, the destination hard-linked to the master', async () => {
    server.route('/disk.img', { body: data, lastModified: new Date(0) });
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: server.url('/disk.img'),
      dest: dest('a.img'),
    });
    expect(r.statusCode).toBe(200);
    const result = r.json() as {
      cacheHit: boolean;
      masterPath: string;
      destPath: string;
      placedBy: string;
      bytesDownloaded: number;
    };
    expect(result).toMatchObject({
      cacheHit: false,
      destPath: dest('a.img'),
      placedBy: 'link',
      bytesDownloaded: data.length,
    });
    expect(r.headers['x-imagecache-job-id']).toMatch(/^fetch\.instance@node-api~/);
    const [d, m] = [fs.statSync(dest('a.img')), fs.statSync(result.masterPath)];
    expect(d.ino).toBe(m.ino);
    expect(d.nlink).toBe(2);
    expect(fs.readFileSync(dest('a.img')).equals(data)).toBe(true);
  });

  it('answers 202 with wait:false, and GET /v1/jobs/:id reads the job until it completes', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: server.url('/disk.img'),
      dest: dest('b.img'),
      wait: false,
    });
    expect(r.statusCode).toBe(202);
    const { jobId } = r.json() as { jobId: string };
    const view = await until(async () => {
      const v = (await get(`/v1/jobs/${encodeURIComponent(jobId)}`)).json() as {
        state: string;
        result?: { cacheHit: boolean };
      };
      return v.state === 'completed' ? v : undefined;
    });
    expect(view).toMatchObject({
      id: jobId,
      name: 'fetch',
      state: 'completed',
      result: { cacheHit: true, destPath: dest('b.img') },
    });
    expect(fs.statSync(dest('b.img')).nlink).toBe(3);
    expect(server.count('GET', '/disk.img')).toBe(1);
  });

  it('answers 422 IMAGE_CHECKSUM_ERROR to a checksum mismatch, writing nothing', async () => {
    server.route('/sum.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: server.url('/sum.img'),
      dest: dest('sum.img'),
      expectedChecksum: `sha256:${'ab'.repeat(32)}`,
    });
    expect(r.statusCode).toBe(422);
    const { error } = r.json() as {
      error: { code: string; message: string; retryable: boolean; jobId: string };
    };
    expect(error).toMatchObject({
      code: 'IMAGE_CHECKSUM_ERROR',
      retryable: false,
      jobId: r.headers['x-imagecache-job-id'],
    });
    expect(error.message).toContain('/sum.img');
    expect(fs.existsSync(dest('sum.img'))).toBe(false);
    expect(server.count('GET', '/sum.img')).toBe(1); // permanent: one attempt
  });

  it('answers 404 IMAGE_NOT_FOUND to an image the server does not have', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: server.url('/missing.img'),
      dest: dest('m.img'),
    });
    expect(r.statusCode).toBe(404);
    expect((r.json() as { error: { code: string } }).error.code).toBe('IMAGE_NOT_FOUND');
  });

  it('answers 400 INVALID_DESTINATION from the engine', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: server.url('/disk.img'),
      dest: path.join(root, 'no-such-dir', 'x.img'),
    });
    expect(r.statusCode).toBe(400);
    expect((r.json() as { error: { code: string } }).error.code).toBe('INVALID_DESTINATION');
  });
});

describe('clean-ups through a worker', () => {
  it('POST /v1/clean-up answers with what was evicted', async () => {
    server.route('/old.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
    expect(
      (
        await post('/v1/fetch', {
          host: HOST,
          cache: 'instance',
          href: server.url('/old.img'),
          dest: dest('old.img'),
        })
      ).statusCode,
    ).toBe(200);
    fs.unlinkSync(dest('old.img')); // the master is now unused
    const r = await post('/v1/clean-up', { host: HOST, cache: 'instance', amount: '1MiB' });
    expect(r.statusCode).toBe(200);
    const result = r.json() as { removed: { reason: string }[]; freed: number };
    expect(result.removed.map((m) => m.reason)).toEqual(['amount']);
    expect(result.freed).toBe(1 << 20);
  });

  it('POST /v1/clean-up-caches answers with the space report', async () => {
    server.route('/next.img', { body: randomBytes(1000), lastModified: new Date(0) });
    const r = await post('/v1/clean-up-caches', {
      host: HOST,
      directory: root,
      images: [{ href: server.url('/next.img') }],
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ directory: root, required: 1000, cleaned: [] });
  });
});

describe('metrics', () => {
  it("the worker's /metrics counts hits, misses, errors, bytes, stages, evictions and the cache's size", async () => {
    const text = await (await fetch(`${workerMetrics}/metrics`)).text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('imagecache_fetches_total{cache="instance",result="miss"}')).toBe(2);
    expect(value('imagecache_fetches_total{cache="instance",result="hit"}')).toBe(1);
    expect(value('imagecache_fetches_total{cache="instance",result="error"}')).toBe(3);
    expect(value('imagecache_fetch_errors_total{cache="instance",code="IMAGE_CHECKSUM_ERROR"}')).toBe(1);
    expect(value('imagecache_fetch_errors_total{cache="instance",code="IMAGE_NOT_FOUND"}')).toBe(1);
    expect(value('imagecache_downloaded_bytes_total{cache="instance"}')).toBe((3 << 20) + (1 << 20));
    expect(value('imagecache_fetch_stage_duration_seconds_count{cache="instance",stage="download"}')).toBe(2);
    expect(value('imagecache_evictions_total{cache="instance",reason="amount"}')).toBe(1);
    expect(value('imagecache_evicted_bytes_total{cache="instance",reason="amount"}')).toBe(1 << 20);
    expect(value('imagecache_cache_files{cache="instance"}')).toBe(1);
    expect(value('imagecache_cache_bytes{cache="instance"}')).toBe(3 << 20);
    expect(value('imagecache_workers_running{kind="fetch",cache="instance"}')).toBe(1);
    // No label names an image, a destination or a job.
    expect(text).not.toMatch(/disk\.img|sum\.img|dest|~/);
  });

  it("the worker's /readyz checks Redis, its workers and its folders; /healthz answers", async () => {
    const r = await fetch(`${workerMetrics}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      status: 'ok',
      checks: { redis: 'ok', workers: 'ok', 'cache:instance': 'ok' },
    });
    expect((await fetch(`${workerMetrics}/healthz`)).status).toBe(200);
  });

  it("the API's /metrics shows the queues' depth", async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(
      new RegExp(
        `imagecache_queue_jobs\\{host="${HOST}",cache="instance",kind="fetch",state="completed"\\} [1-9]`,
      ),
    );
    expect(text).toContain(
      `imagecache_queue_jobs{host="${HOST}",cache="instance",kind="fetch",state="failed"} 3`,
    );
    expect(text).toContain(
      `imagecache_queue_jobs{host="${HOST}",cache="",kind="clean-caches",state="completed"} 1`,
    );
  });

  it("the worker's /readyz answers 503 naming what is wrong: Redis down, no worker running, a folder not writable", async () => {
    const tmpfs = mountTmpfs(1);
    if ('skip' in tmpfs) {
      console.warn(`read-only folder not checked: ${tmpfs.skip}`);
      return;
    }
    const server = await serveMetrics({
      metrics: new WorkerMetrics({ defaultMetrics: false }),
      workers: [],
      registry: new CacheRegistry({}, silentLogger).register(
        new ImageCache({ name: 'ro', masterDir: tmpfs.dir, logger: silentLogger }),
      ),
      redis: `redis://127.0.0.1:${await closedPort()}`,
      port: 0,
    });
    try {
      expect(spawnSync('mount', ['-o', 'remount,ro', tmpfs.dir]).status).toBe(0);
      const r = await fetch(`${server.url}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.json()).toEqual({
        status: 'unavailable',
        checks: {
          redis: expect.stringMatching(/^unreachable: /),
          workers: 'not running: none started',
          'cache:ro': 'not writable: EROFS',
        },
      });
    } finally {
      await server.close();
      tmpfs.unmount();
    }
  });
});
