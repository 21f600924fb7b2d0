import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildApi } from '@imagecache/api';
import { ImageCacheError, NoWorker } from '@imagecache/errors';
import { ImageCacheClient } from '@imagecache/queue';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import {
  hostSetup,
  REPO,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  whoHasOpen,
  type WorkerProcess,
} from './harness';

/**
 * Issue 8: one bad job never takes the host down, and a caller whose worker died learns it in bounded time.
 * Real worker processes (`./bin/imagecache worker`), a real Redis, real image servers.
 */
const prefix = uniquePrefix();
const redis = { mode: 'standalone' as const, url: SHARED_REDIS, prefix };
const MISBEHAVE = path.join(__dirname, 'fixtures/misbehave-on-connect.cjs');
let server: ImageServer;
let misbehaving: ImageServer;
let client: ImageCacheClient;
const started: WorkerProcess[] = [];

beforeAll(async () => {
  server = await startImageServer();
  // Only connections to this one trigger the test-only misbehaviour of a preloaded worker.
  misbehaving = await startImageServer();
  client = new ImageCacheClient({ redis, pollIntervalMs: 500 });
});

afterAll(async () => {
  await client.close();
  await Promise.all(started.map((w) => w.stop('SIGKILL')));
  await server.close();
  await misbehaving.close();
});

async function worker(config: string, args: string[] = [], env: Record<string, string> = {}) {
  const w = await startWorker(config, args, env);
  started.push(w);
  return w;
}

const misbehave = (mode: 'throw' | 'reject') => ({
  NODE_OPTIONS: `--require ${MISBEHAVE}`,
  IMAGECACHE_TEST_MISBEHAVE_PORT: String(misbehaving.port),
  IMAGECACHE_TEST_MISBEHAVE: mode,
});

describe('a job that misbehaves asynchronously', () => {
  it('fails alone when it leaves a promise rejected: the worker goes on serving', async () => {
    const setup = hostSetup({ host: 'node-stray', redis: SHARED_REDIS, prefix });
    const w = await worker(setup.config, [], misbehave('reject'));
    misbehaving.route('/stray.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
    const err = await client
      .fetchImage({
        host: 'node-stray',
        cache: 'instance',
        href: misbehaving.url('/stray.img'),
        dest: setup.dest('stray'),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageCacheError);
    expect((err as ImageCacheError).message).toMatch(/nothing handled: Error: test-only stray rejection/);
    expect(fs.existsSync(setup.dest('stray'))).toBe(false);
    expect(w.child.exitCode).toBeNull();
    expect(w.output()).toMatch(/unhandled rejection in a job: the job fails/);

    const data = randomBytes(1 << 20);
    server.route('/after-stray.img', { body: data, lastModified: new Date(0) });
    await client.fetchImage({
      host: 'node-stray',
      cache: 'instance',
      href: server.url('/after-stray.img'),
      dest: setup.dest('after'),
    });
    expect(fs.readFileSync(setup.dest('after')).equals(data)).toBe(true);
    expect(fs.readdirSync(path.join(setup.masterDir('instance'), '.imagecache-work'))).toEqual([]);
  }, 30_000);

  it('ends its worker (status 1, the cause logged) on an uncaught exception; another replica finishes the job', async () => {
    const setup = hostSetup({ host: 'node-crash', redis: SHARED_REDIS, prefix });
    const first = await worker(setup.config, [], misbehave('throw'));
    const data = randomBytes(2 << 20);
    misbehaving.route('/crash.img', { body: data, lastModified: new Date(0) });
    const href = `http://user:crash-secret@127.0.0.1:${misbehaving.port}/crash.img`;
    const pending = client.fetchImage({
      host: 'node-crash',
      cache: 'instance',
      href,
      dest: setup.dest('crash'),
    });
    const code = await Promise.race([
      first.stop('SIGCONT'), // resolves with the exit status, without stopping it
      new Promise((r) => setTimeout(() => r('still running'), 15_000)),
    ]);
    expect(code).toBe(1);
    const log = first.output();
    expect(log).toMatch(/uncaught exception: exiting so that the supervisor restarts the worker/);
    expect(log).toContain('test-only uncaught exception in a socket callback');
    expect(log).toMatch(/"job":"fetch\.instance@node-crash~/);
    expect(log).not.toContain('crash-secret');

    // The supervisor's part: a replica (here, a new one) takes the job over once its lock (3 s) expires.
    const takenAt = Date.now();
    await worker(setup.config);
    const result = await pending;
    expect(Date.now() - takenAt).toBeLessThan(3000 + 3000 + 5000); // lock + stalled check + the fetch
    expect(result).toMatchObject({ cacheHit: false, size: data.length });
    expect(fs.readFileSync(setup.dest('crash')).equals(data)).toBe(true);
  }, 60_000);
});

describe('a worker killed mid-job', () => {
  let api: Awaited<ReturnType<typeof buildApi>>;
  afterAll(() => api?.close());

  it('shows on /readyz within the heartbeat TTL; waiting callers get NO_WORKER within TTL + 2 polls', async () => {
    const HOST = 'node-lonely';
    const TTL_S = 2;
    const setup = hostSetup({ host: HOST, redis: SHARED_REDIS, prefix });
    const victim = await worker(setup.config, ['--heartbeat-ttl', String(TTL_S)]);
    api = await buildApi({
      redis,
      hosts: [{ host: HOST, caches: ['instance'] }],
      board: { username: 'u', password: 'p', discover: false },
      logger: false,
      defaultMetrics: false,
    });
    expect((await api.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await api.inject({ method: 'GET', url: '/metrics' })).body).toContain(
      `imagecache_workers_live{host="${HOST}",cache="instance"} 1`,
    );

    server.route('/lonely.img', { body: randomBytes(8 << 20), lastModified: new Date(0), stallAt: 4 << 20 });
    const POLL_MS = 500;
    const waiting = new ImageCacheClient({ redis, pollIntervalMs: POLL_MS });
    try {
      const call = waiting
        .fetchImage({
          host: HOST,
          cache: 'instance',
          href: server.url('/lonely.img'),
          dest: setup.dest('lonely'),
        })
        .catch((e: unknown) => e);
      // The API's own wait (its client polls every 5 s).
      const apiCall = api.inject({
        method: 'POST',
        url: '/v1/fetch',
        payload: {
          host: HOST,
          cache: 'instance',
          href: server.url('/lonely.img'),
          dest: setup.dest('lonely2'),
        },
        headers: { authorization: 'Basic ' + Buffer.from('u:p').toString('base64') },
      });
      for (let i = 0; i < 200 && !whoHasOpen([victim.pid], '/image'); i++) await sleep(50);
      expect(whoHasOpen([victim.pid], '/image')).toBe(victim.pid);

      await victim.stop('SIGKILL');
      const killedAt = Date.now();
      let ready = await api.inject({ method: 'GET', url: '/readyz' });
      while (ready.statusCode === 200 && Date.now() - killedAt < 10_000) {
        await sleep(100);
        ready = await api.inject({ method: 'GET', url: '/readyz' });
      }
      expect(Date.now() - killedAt).toBeLessThan(TTL_S * 1000 + 500);
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ unserved: [{ host: HOST, cache: 'instance' }] });
      expect((await api.inject({ method: 'GET', url: '/metrics' })).body).toContain(
        `imagecache_workers_live{host="${HOST}",cache="instance"} 0`,
      );

      const err = await call;
      expect(err).toBeInstanceOf(NoWorker);
      expect(Date.now() - killedAt).toBeLessThan(TTL_S * 1000 + 2 * POLL_MS + 1000);
      const r = await apiCall;
      expect(r.statusCode).toBe(409);
      expect((r.json() as { error: { code: string } }).error.code).toBe('NO_WORKER');
      expect(Date.now() - killedAt).toBeLessThan(TTL_S * 1000 + 2 * 5000 + 1000);
    } finally {
      await waiting.close();
    }
  }, 60_000);
});

describe('the CLI through Redis', () => {
  it('exits 62 NO_WORKER for a host no worker serves, having queued nothing', async () => {
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(path.join(REPO, 'bin/imagecache'), [
        'fetch',
        server.url('/x.img'),
        '/tmp/imagecache-no-worker-x.img',
        '--redis',
        SHARED_REDIS,
        '--redis-prefix',
        prefix,
        '--host',
        'node-nobody',
        '--cache',
        'instance',
        '--json',
      ]);
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(r.code).toBe(62);
    expect(JSON.parse(r.out)).toMatchObject({ error: { code: 'NO_WORKER' } });
  }, 20_000);
});

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
