// The distributed mode on a real replicated Redis deployment (Cluster or Sentinel): one suite, run by
// redis-cluster.test.ts and redis-sentinel.test.ts. Two worker replicas and an API, real processes; conductors in
// this process and in processes of their own; the deployment's master is killed (kill -9), then handed over (a
// planned failover), each in the middle of a run of fetches: every caller gets its result (a job the failover lost is
// added again by its caller), and a job cancelled before it stays cancelled.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RedisConfig } from '@imagecache/config';
import { OperationAborted } from '@imagecache/errors';
import { ImageCacheClient, connectRedis, keys } from '@imagecache/queue';
import {
  freePort,
  killStarted,
  redisCli,
  redisServerAvailable,
  settleAll,
  startImageServer,
  track,
  type ImageServer,
} from '@imagecache/testing';
import {
  REPO,
  clientProcess,
  hostSetup,
  startWorker,
  uniquePrefix,
  whoHasOpen,
  type HostSetup,
  type WorkerProcess,
} from './harness';

export interface Deployment {
  /** The configuration file's `redis` section (without the prefix). */
  section: Record<string, unknown>;
  /** The same as a RedisConfig (for clients made here), with `prefix`. */
  config(prefix: string): RedisConfig;
  /** Kills (SIGKILL) the Redis server holding the deployment's keys: its replica is promoted. */
  killMaster(prefix: string): Promise<Failover>;
  /**
   * Cuts the replicas of the server holding the deployment's keys off it (see `cutOff`): what it takes next reaches
   * none of them. Returns what lets them go on.
   */
  cutReplicas(prefix: string): Promise<() => void>;
  /** Asks the deployment to promote a replica of the server holding its keys (a planned failover). */
  switchover(prefix: string): Promise<Failover>;
  /** Resolves once every replica left is in sync with its master (before the next failover). */
  inSync(): Promise<void>;
  stop(): Promise<void>;
}

/** A failover under way: the master's port before, and the new master's once the deployment has promoted it. */
export interface Failover {
  former: number;
  promoted: Promise<number>;
}

interface Outcome {
  i: number;
  phase: 'before' | 'during' | 'after';
  ok?: unknown;
  code?: string;
  message?: string;
  hung?: true;
}

const HOST = 'node-a';
/** A caller that has no answer after this long is hung (the failover takes a few seconds). */
const HANG_MS = 45_000;

/**
 * Stops (SIGSTOP) the replicas of the master at `masterPort` and drops their replication links: until they go on
 * (SIGCONT, by the function returned) and reconnect, whatever the master takes is on it alone. Killed meanwhile, it
 * takes those writes with it: the loss asynchronous replication allows, made certain instead of left to chance.
 */
export async function cutOff(masterPort: number, replicaPids: number[]): Promise<() => void> {
  for (const pid of replicaPids) process.kill(pid, 'SIGSTOP');
  await redisCli(masterPort, 'CLIENT', 'KILL', 'TYPE', 'replica');
  return () => {
    for (const pid of replicaPids) process.kill(pid, 'SIGCONT');
  };
}

/**
 * Without redis-server the suite is skipped with a printed reason, except in CI (`CI=true`): there it runs, and
 * fails loudly when the deployment can't start.
 */
export function describeDeployment(title: string, start: () => Promise<Deployment>): void {
  const available = redisServerAvailable();
  if (!available.ok && process.env.CI !== 'true') {
    // Skipped on a developer machine without redis-server/redis-cli (the reason is in the title); CI never skips.
    describe.skip(`${title} (skipped: ${available.reason})`, () => it('runs', () => undefined));
    return;
  }
  describe(title, () => suite(start));
}

function suite(start: () => Promise<Deployment>): void {
  const prefix = uniquePrefix();
  let deployment: Deployment;
  let server: ImageServer;
  let setup: HostSetup;
  let replicas: WorkerProcess[] = [];
  const metricsPorts: number[] = [];
  let client: ImageCacheClient;
  let api: { base: string; stop(): Promise<void> };

  /** Every replica the suite started (a killed one's replacement too): their output is printed if a test fails. */
  const everStarted: WorkerProcess[] = [];
  let failed = false;
  const startReplica = async (i: number) => {
    metricsPorts[i] = await freePort();
    const w = await startWorker(setup.config, ['--metrics-port', String(metricsPorts[i])]);
    everStarted.push(w);
    return w;
  };
  /** `it`, noting a failure: CI's log then shows what the replicas said (starved or dead, the flake's question). */
  const scenario = (title: string, fn: () => Promise<void>, timeout?: number) =>
    it(
      title,
      () =>
        fn().catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      timeout,
    );

  beforeAll(async () => {
    try {
      await setUp();
    } catch (err) {
      failed = true;
      throw err;
    }
  }, 120_000);

  const setUp = async () => {
    deployment = await start();
    server = await startImageServer();
    setup = hostSetup({ host: HOST, redisSection: deployment.section, prefix });
    // Both awaited before failing: a replica that did start is then stopped by the tear-down.
    const started = await Promise.allSettled([startReplica(0), startReplica(1)]);
    replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    client = new ImageCacheClient({ redis: deployment.config(prefix), pollIntervalMs: 500 });
    api = await startApi(setup.config);
  };

  afterAll(async () => {
    if (failed) {
      for (const w of everStarted) {
        const tail = w.output().split('\n').slice(-60).join('\n');
        console.log(
          `replica pid ${w.pid} (exit ${w.child.exitCode ?? w.child.signalCode ?? 'running'}):\n${tail}`,
        );
      }
    }
    // Every step runs, each for 15 s at most: a set-up that failed half-way (or timed out, still starting
    // processes) must not hold the tear-down, and nothing it started outlives the suite.
    const stuck = await settleAll(
      [
        () => api?.stop(),
        () => client?.close(),
        ...replicas.map((r) => () => r.stop('SIGKILL')),
        () => server?.close(),
      ],
      15_000,
    );
    await killStarted();
    await deployment?.stop();
    if (stuck.length > 0) throw new Error(`tear-down: ${stuck.join('; ')}`);
  }, 60_000);

  const workDir = () => path.join(setup.masterDir('instance'), '.imagecache-work');

  scenario(
    'downloads once for 8 concurrent fetches from 2 client processes; every destination is the master',
    async () => {
      const data = randomBytes(4 << 20);
      server.route('/shared.img', { body: data, lastModified: new Date(0), delayMs: 500 });
      const common = {
        redisConfig: deployment.config(prefix),
        host: HOST,
        cache: 'instance',
        href: server.url('/shared.img'),
      };
      const names = Array.from({ length: 8 }, (_, i) => setup.dest(`shared-${i}`));
      const runs = await Promise.all([
        clientProcess({ ...common, dests: names.slice(0, 4) }),
        clientProcess({ ...common, dests: names.slice(4) }),
      ]);
      const outcomes = runs.flatMap((r) => r.results);
      expect(outcomes.filter((o) => o.error)).toEqual([]);
      expect(server.count('GET', '/shared.img')).toBe(1);
      expect(outcomes.filter((o) => o.ok!.cacheHit === false)).toHaveLength(1);
      const master = outcomes[0]!.ok!.masterPath as string;
      for (const n of names) expect(fs.statSync(n).ino).toBe(fs.statSync(master).ino);
      expect(fs.readFileSync(names[7]!).equals(data)).toBe(true);
    },
    30_000,
  );

  scenario(
    'finishes a download after kill -9 of the replica doing it: the other one resumes it with Range',
    async () => {
      const data = randomBytes(12 << 20);
      const route = { body: data, lastModified: new Date(0), etag: '"k1"', ranges: true };
      server.route('/killed.img', { ...route, stallAt: 9 << 20 });
      const fetching = clientProcess({
        redisConfig: deployment.config(prefix),
        host: HOST,
        cache: 'instance',
        href: server.url('/killed.img'),
        dests: [setup.dest('killed')],
      });
      let victim: number | undefined;
      for (let i = 0; i < 300 && !victim; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const work = fs.readdirSync(workDir());
        const image = work.length ? path.join(workDir(), work[0]!, 'image') : '';
        if (image && (fs.statSync(image, { throwIfNoEntry: false })?.size ?? 0) >= 8 << 20) {
          victim = whoHasOpen(
            replicas.map((r) => r.pid),
            '/image',
          );
        }
      }
      expect(victim).toBeDefined();
      const i = replicas.findIndex((r) => r.pid === victim);
      await replicas[i]!.stop('SIGKILL');
      try {
        server.route('/killed.img', route);
        const { results } = await fetching;
        expect(results[0]!.error).toBeUndefined();
        expect(results[0]!.ok!.cacheHit).toBe(false);
        expect(fs.readFileSync(setup.dest('killed')).equals(data)).toBe(true);
        const gets = server.requests.filter((r) => r.method === 'GET' && r.path === '/killed.img');
        expect(gets.at(-1)!.headers.range).toMatch(/^bytes=\d+-$/);
        expect(fs.readdirSync(workDir())).toEqual([]);
      } finally {
        // Replaced whatever the outcome: the later tests need both replicas (their /readyz, a live worker through
        // each failover), so a failure here is this test's alone.
        replicas[i] = await startReplica(i);
      }
    },
    60_000,
  );

  /** A fetch stalled mid-download, cancelled through the client: its worker hears it on the cancel channel. */
  const cancelRunningFetch = async (name: string) => {
    server.route(`/${name}.img`, { body: randomBytes(8 << 20), lastModified: new Date(0), stallAt: 2 << 20 });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url(`/${name}.img`),
      dest: setup.dest(name),
    });
    const outcome = client.waitFor(jobId).catch((e: unknown) => e);
    for (let i = 0; i < 400 && server.count('GET', `/${name}.img`) === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(server.count('GET', `/${name}.img`)).toBe(1);
    await client.cancel(jobId);
    const err = await outcome;
    expect(err).toBeInstanceOf(OperationAborted);
    expect((await client.getJob(jobId))?.state).toBe('failed');
    expect(fs.existsSync(setup.dest(name))).toBe(false);
  };

  scenario(
    'cancels a running fetch: the request reaches its worker over pub/sub',
    async () => {
      await cancelRunningFetch('cancelled');
    },
    30_000,
  );

  scenario(
    "serves the API's /v1/fetch and /readyz, and each worker's /readyz",
    async () => {
      expect(await getJson(`${api.base}/readyz`)).toEqual({
        status: 200,
        body: { status: 'ok', checks: { redis: 'ok', workers: 'ok' } },
      });
      for (const port of metricsPorts) {
        const r = await getJson(`http://127.0.0.1:${port}/readyz`);
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ status: 'ok', checks: { redis: 'ok' } });
      }
      const data = randomBytes(1 << 20);
      server.route('/api.img', { body: data, lastModified: new Date(0) });
      const res = await postFetch(api.base, server.url('/api.img'), setup.dest('api'));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ cacheHit: false, size: data.length });
      expect(fs.readFileSync(setup.dest('api')).equals(data)).toBe(true);
    },
    30_000,
  );

  /**
   * A run of 12 fetches (each image answered after 1 s, asked 250 ms apart: jobs waiting, running and finishing
   * when it happens) through `event` (a failover). Every caller gets its result within HANG_MS, those asked while
   * it is under way too: an add the old master refused is tried again on the new one, a job it took but never
   * passed on is added again by its caller (README, "Redis Cluster and Sentinel"). Each image leaves the origin
   * once: a job run twice (lost, added again) finds the first run's master, or waits for its download.
   *
   * Just before the failover a job is cancelled through the API (waiting: delayed a minute), its caller waiting on
   * it; after it, the job stays cancelled: gone, never fetched, and a caller asking for it again is told it was
   * cancelled (the cancel's record reached the new master) instead of adding it again or waiting.
   */
  const runThrough = async (tag: string, event: () => Promise<Failover>) => {
    const images = Array.from({ length: 12 }, (_, i) => ({
      name: `${tag}-${i}`,
      data: randomBytes(1 << 20),
    }));
    for (const im of images)
      server.route(`/${im.name}.img`, { body: im.data, lastModified: new Date(0), delayMs: 1000 });
    let phase: Outcome['phase'] = 'before';
    const calls: Promise<Outcome>[] = [];
    const ask = (i: number) => {
      const asked = phase;
      const im = images[i]!;
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<Outcome>((r) => {
        timer = setTimeout(() => r({ i, phase: asked, hung: true }), HANG_MS);
      });
      const call = client
        .fetchImage({
          host: HOST,
          cache: 'instance',
          href: server.url(`/${im.name}.img`),
          dest: setup.dest(im.name),
        })
        .then(
          (ok): Outcome => ({ i, phase: asked, ok }),
          (e: { code?: string; message?: string }): Outcome => ({
            i,
            phase: asked,
            code: e.code ?? String(e),
            message: e.message,
          }),
        );
      calls.push(Promise.race([call, hung]).finally(() => clearTimeout(timer)));
    };
    for (let i = 0; i < 6; i++) {
      ask(i);
      await new Promise((r) => setTimeout(r, 250));
    }
    const cancelled = await cancelThroughApi(`${tag}-cancelled`);
    const { promoted, former } = await event();
    phase = 'during';
    for (let i = 6; i < 9; i++) {
      ask(i);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(await promoted).not.toBe(former);
    // The clients and workers find the new master on their own (nothing is restarted).
    phase = 'after';
    for (let i = 9; i < 12; i++) ask(i);
    const outcomes = await Promise.all(calls);

    expect(outcomes.filter((o) => o.hung)).toEqual([]);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    for (const o of outcomes) {
      expect(fs.readFileSync(setup.dest(images[o.i]!.name)).equals(images[o.i]!.data)).toBe(true);
      // Each image left the origin once, however often its job ran.
      expect(server.count('GET', `/${images[o.i]!.name}.img`)).toBe(1);
    }
    await cancelled.staysCancelled();
    // The replicas report ready again once they have found the new master.
    for (const port of metricsPorts) {
      let status = 0;
      for (let t = 0; t < 100 && status !== 200; t++) {
        status = (await getJson(`http://127.0.0.1:${port}/readyz`).catch(() => ({ status: 0 }))).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    }
  };

  /**
   * A fetch delayed a minute (so it waits), its caller waiting on it, cancelled through the API's DELETE (another
   * process: the caller learns it from the removal event or the cancel's record). `staysCancelled` checks, after a
   * failover, that it did not come back.
   */
  const cancelThroughApi = async (name: string) => {
    server.route(`/${name}.img`, { body: randomBytes(1024), lastModified: new Date(0) });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url(`/${name}.img`),
      dest: setup.dest(name),
      jobOptions: { delay: 60_000 },
    });
    const waiting = client.waitFor(jobId).catch((e: unknown) => e);
    const res = await fetch(`${api.base}/v1/jobs/${encodeURIComponent(jobId)}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect(await waiting).toBeInstanceOf(OperationAborted);
    return {
      staysCancelled: async () => {
        const again = await client.waitFor(jobId).catch((e: unknown) => e);
        expect(again).toBeInstanceOf(OperationAborted);
        expect(await client.getJob(jobId)).toBeUndefined();
        const redis = connectRedis(deployment.config(prefix), 'worker');
        try {
          expect(await redis.get(keys.cancelled(prefix, jobId))).toBe('cancelled through the API');
        } finally {
          redis.disconnect();
        }
        expect(server.count('GET', `/${name}.img`)).toBe(0);
        expect(fs.existsSync(setup.dest(name))).toBe(false);
      },
    };
  };

  scenario(
    'loses no job and hangs no caller when the master is killed (kill -9) in the middle of a run',
    async () => {
      // A job (with credentials) added just before the kill, after the replicas were cut off: Redis loses it, and
      // its credentials, for certain; delayed, so no worker takes it from the old master.
      const lost = { name: 'kill-lost', data: randomBytes(1 << 20) };
      server.route(`/${lost.name}.img`, { body: lost.data, lastModified: new Date(0) });
      let lostCall: Promise<unknown> | undefined;
      let lostId = '';
      let killedAt = 0;
      await runThrough('kill', async () => {
        const rejoin = await deployment.cutReplicas(prefix);
        try {
          ({ jobId: lostId } = await client.enqueueFetch({
            host: HOST,
            cache: 'instance',
            href: server.url(`/${lost.name}.img`),
            auth: { type: 'bearer', token: 'lost-token-7e1f' },
            dest: setup.dest(lost.name),
            jobOptions: { delay: 1000 },
          }));
          lostCall = client.waitFor(lostId).catch((e: unknown) => e);
          expect(await client.getJob(lostId)).toBeDefined();
          killedAt = Date.now();
          return await deployment.killMaster(prefix);
        } finally {
          rejoin();
        }
      });
      // Its caller added it again (created after the kill), credentials and all: it got its result.
      expect(await lostCall).toMatchObject({ cacheHit: false, size: lost.data.length });
      expect((await client.getJob(lostId))?.createdAt).toBeGreaterThan(killedAt);
      expect(fs.readFileSync(setup.dest(lost.name)).equals(lost.data)).toBe(true);
      const gets = server.requests.filter((r) => r.method === 'GET' && r.path === `/${lost.name}.img`);
      expect(gets.map((r) => r.headers.authorization)).toEqual(['Bearer lost-token-7e1f']);
      // The replicas left in sync again before the next failover (as an operator would wait).
      await deployment.inSync();
    },
    90_000,
  );

  scenario(
    'loses no job and hangs no caller through a switchover (the master hands over to a replica)',
    async () => {
      await runThrough('switch', () => deployment.switchover(prefix));
    },
    90_000,
  );

  scenario(
    'after the failover: cancels still reach the workers, the API is ready and serves',
    async () => {
      await cancelRunningFetch('cancelled-after');
      let ready: { status: number; body: unknown } = { status: 0, body: undefined };
      for (let t = 0; t < 100 && ready.status !== 200; t++) {
        ready = await getJson(`${api.base}/readyz`).catch(() => ({ status: 0, body: undefined }));
        if (ready.status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toEqual({ status: 200, body: { status: 'ok', checks: { redis: 'ok', workers: 'ok' } } });
      const data = randomBytes(1 << 20);
      server.route('/api-after.img', { body: data, lastModified: new Date(0) });
      const res = await postFetch(api.base, server.url('/api-after.img'), setup.dest('api-after'));
      expect(res.status).toBe(200);
      expect(fs.readFileSync(setup.dest('api-after')).equals(data)).toBe(true);
    },
    30_000,
  );
}

/** One fetch into the `instance` cache of HOST through the HTTP API at `base`. */
function postFetch(base: string, href: string, dest: string): Promise<Response> {
  return fetch(`${base}/v1/fetch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ host: HOST, cache: 'instance', href, dest }),
  });
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

/** `imagecache api` as its own process on a free port (no board auth: loopback only). */
async function startApi(config: string): Promise<{ base: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = track(
    spawn(
      path.join(REPO, 'bin/imagecache'),
      ['api', '--config', config, '--port', String(port), '--no-board-auth'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break;
    if (
      (await fetch(`${base}/healthz`)
        .then((r) => r.status)
        .catch(() => 0)) === 200
    )
      return {
        base,
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the API did not start:\n${out}`);
}
