import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  CredentialsExpired,
  CredentialsNotOwned,
  ImageChecksumAlgorithmFailure,
  type ImageCacheError,
} from '@imagecache/errors';
import { DEFAULT_JOB_OPTIONS, ImageCacheClient, JOB_NAMES, keys, queueNames } from '@imagecache/queue';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import {
  hostSetup,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  type HostSetup,
  type WorkerProcess,
} from './harness';

/** A job's credentials: never shown, bound to their job (issue 9, C1 and C2). Real worker process and Redis. */
const prefix = uniquePrefix();
const HOST = 'node-c';
let server: ImageServer;
let setup: HostSetup;
let worker: WorkerProcess;
let client: ImageCacheClient;
let redis: Redis;
let queue: Queue;

beforeAll(async () => {
  server = await startImageServer();
  setup = hostSetup({ host: HOST, redis: SHARED_REDIS, prefix });
  worker = await startWorker(setup.config);
  client = new ImageCacheClient({
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    pollIntervalMs: 300,
  });
  redis = new Redis(SHARED_REDIS, { maxRetriesPerRequest: null });
  queue = new Queue(queueNames.fetch(HOST, 'instance'), { connection: redis, prefix });
}, 30_000);

afterAll(async () => {
  await client.close();
  await queue.close();
  await worker.stop('SIGKILL');
  redis.disconnect();
  await server.close();
});

/** Every key under the test's prefix with everything it holds, as text; the secrets' own keys apart. */
async function redisDump(): Promise<{ text: string; secretKeys: string[] }> {
  const all = await redis.keys(`${prefix}*`);
  const secretKeys = all.filter((k) => k.startsWith(`${prefix}:secret:`));
  const parts: string[] = [];
  for (const key of all.filter((k) => !secretKeys.includes(k))) {
    const type = await redis.type(key);
    const value =
      type === 'string'
        ? await redis.get(key)
        : type === 'hash'
          ? await redis.hgetall(key)
          : type === 'list'
            ? await redis.lrange(key, 0, -1)
            : type === 'set'
              ? await redis.smembers(key)
              : type === 'zset'
                ? await redis.zrange(key, 0, -1, 'WITHSCORES')
                : type === 'stream'
                  ? await redis.xrange(key, '-', '+')
                  : type;
    parts.push(key, JSON.stringify(value));
  }
  return { text: parts.join('\n'), secretKeys };
}

/** The typed error a call fails with (a success fails the test). */
function failure(p: Promise<unknown>): Promise<ImageCacheError> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as ImageCacheError,
  );
}

async function settled(jobId: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const state = await queue.getJobState(jobId);
    if (state === 'completed' || state === 'failed') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${jobId} did not finish`);
}

describe('credentials in a checksum URL (C1)', () => {
  it('never shows the password of an algo-prefixed checksum URL: error, job view, Redis, worker log', async () => {
    const pass = `C1pw-${randomBytes(6).toString('hex')}`;
    server.route('/c1.img', { body: randomBytes(1000), lastModified: new Date(0) });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url('/c1.img'),
      dest: setup.dest('c1'),
      expectedChecksum: `sha256:http://user:${pass}@127.0.0.1:${server.port}/SHA256SUMS`,
    });
    const err = await failure(client.waitFor(jobId));
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.message).toContain('http://***@127.0.0.1');
    expect(JSON.stringify(err)).not.toContain(pass);
    expect(err.message).not.toContain(pass);

    const view = await client.getJob(jobId);
    expect(view?.state).toBe('failed');
    expect(view?.data.expectedChecksum).toBe(`sha256:http://***@127.0.0.1:${server.port}/SHA256SUMS`);
    expect(JSON.stringify(view)).not.toContain(pass);

    const { text, secretKeys } = await redisDump();
    expect(text).toContain(jobId); // the dump does hold the job…
    expect(text).not.toContain(pass); // …and nothing of the password
    expect(secretKeys).toEqual([]); // dropped: the job failed for good
    expect(worker.output()).toContain(jobId);
    expect(worker.output()).not.toContain(pass);
    expect(fs.existsSync(setup.dest('c1'))).toBe(false);
  }, 20_000);

  it('never shows the password or a secret query value of a checksum file that is not found', async () => {
    const pass = `C1b-${randomBytes(6).toString('hex')}`;
    const sig = `sig-${randomBytes(6).toString('hex')}`;
    server.route('/c1b.img', { body: randomBytes(1000), lastModified: new Date(0) });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url('/c1b.img'),
      dest: setup.dest('c1b'),
      expectedChecksum: `http://carol:${pass}@127.0.0.1:${server.port}/missing.sha256?token=${sig}`,
    });
    const err = await failure(client.waitFor(jobId));
    expect(err.code).toBe('IMAGE_DOWNLOAD_FAILED');
    // The checksum file was asked for with the credentials (they did reach the worker).
    const asked = server.requests.find((r) => r.path.startsWith('/missing.sha256'));
    expect(asked?.headers.authorization).toBe(`Basic ${Buffer.from(`carol:${pass}`).toString('base64')}`);
    expect(asked?.path).toContain(sig);

    const everything = [
      JSON.stringify(err),
      err.message,
      JSON.stringify(await client.getJob(jobId)),
      (await redisDump()).text,
      worker.output(),
    ].join('\n');
    expect(everything).toContain(jobId);
    expect(everything).not.toContain(pass);
    expect(everything).not.toContain(sig);
  }, 20_000);
});

describe('credentials bound to their job (C2)', () => {
  it('gives a job naming another job its credentials none, and leaves them to the real job', async () => {
    const token = `tok-${randomBytes(8).toString('hex')}`;
    const body = randomBytes(4096);
    server.route('/c2.img', { body, lastModified: new Date(0) });
    // The real job waits 2 s (delayed) so that the forged one runs first.
    const real = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url('/c2.img'),
      dest: setup.dest('c2-real'),
      auth: { type: 'bearer', token },
      jobOptions: { delay: 2000 },
    });
    const realJob = await queue.getJob(real.jobId);
    const ref = realJob!.data.credentialsRef as string;
    expect(ref).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(realJob!.data)).not.toContain(token);
    expect(Object.keys(realJob!.data)).not.toContain('secret');

    // What Bull Board's "add job" or "duplicate" does: a job of another id with the same data, dest changed.
    const forged = await queue.add(
      JOB_NAMES.fetch,
      { ...realJob!.data, dest: setup.dest('c2-forged') },
      { ...DEFAULT_JOB_OPTIONS.fetch, jobId: `${queueNames.fetch(HOST, 'instance')}~forged-1` },
    );
    await settled(forged.id!);
    const forgedView = await client.getJob(forged.id!);
    expect(forgedView?.state).toBe('failed');
    expect(forgedView?.error?.code).toBe(CredentialsNotOwned.code);
    expect(forgedView?.error?.message).toMatch(/belong to another job/);
    expect(forgedView?.attemptsMade).toBe(1); // permanent: not retried
    expect(fs.existsSync(setup.dest('c2-forged'))).toBe(false);
    expect(server.requests.filter((r) => r.path === '/c2.img')).toEqual([]); // nothing fetched for it
    expect(await redis.exists(keys.secret(prefix, ref))).toBe(1); // the real job's secret untouched

    const result = (await client.waitFor(real.jobId)) as { destPath: string };
    expect(result.destPath).toBe(setup.dest('c2-real'));
    expect(fs.readFileSync(setup.dest('c2-real')).equals(body)).toBe(true);
    const get = server.requests.find((r) => r.path === '/c2.img' && r.method === 'GET');
    expect(get?.headers.authorization).toBe(`Bearer ${token}`);
    expect(await redis.exists(keys.secret(prefix, ref))).toBe(0); // dropped by its owner once done
  }, 30_000);

  it('fails a retry from the board of a job whose credentials were dropped with CREDENTIALS_EXPIRED', async () => {
    server.route('/c3.img', { status: 404 });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url('/c3.img'),
      dest: setup.dest('c3'),
      auth: { type: 'basic', username: 'u', password: 'c3-password' },
    });
    const first = await failure(client.waitFor(jobId));
    expect(first.code).toBe('IMAGE_NOT_FOUND');
    const ref = (await queue.getJob(jobId))!.data.credentialsRef as string;
    expect(await redis.exists(keys.secret(prefix, ref))).toBe(0); // dropped: the job failed for good
    const asked = server.count('GET', '/c3.img') + server.count('HEAD', '/c3.img');

    server.route('/c3.img', { body: randomBytes(100), lastModified: new Date(0) }); // the image is there now
    await (await queue.getJob(jobId))!.retry('failed'); // Bull Board's "retry"
    await new Promise((r) => setTimeout(r, 200));
    await settled(jobId);
    const view = await client.getJob(jobId);
    expect(view?.state).toBe('failed');
    expect(view?.error?.code).toBe(CredentialsExpired.code);
    expect(view?.error?.message).toMatch(/credentials of job .* were dropped/);
    const err = await failure(client.waitFor(jobId));
    expect(err).toBeInstanceOf(CredentialsExpired);
    // Never fetched anonymously instead.
    expect(server.count('GET', '/c3.img') + server.count('HEAD', '/c3.img')).toBe(asked);
    expect(fs.existsSync(setup.dest('c3'))).toBe(false);
  }, 30_000);

  it("keeps a job's credentials across a retried attempt (a transient failure), then drops them", async () => {
    const pass = `c4-${randomBytes(6).toString('hex')}`;
    const body = randomBytes(2000);
    server.route('/c4.img', { status: 503 });
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href: server.url('/c4.img').replace('://', `://u4:${pass}@`),
      dest: setup.dest('c4'),
      jobOptions: { attempts: 2, backoff: { type: 'fixed', delay: 1500 } }, // time to change the route
    });
    const ref = (await queue.getJob(jobId))!.data.credentialsRef as string;
    for (let i = 0; i < 300 && !(await queue.getJob(jobId))!.failedReason; i++)
      await new Promise((r) => setTimeout(r, 100));
    // The attempt failed with its code (BullMQ's reason, shown on the board); the credentials stay for the next.
    expect((await queue.getJob(jobId))!.failedReason).toMatch(/^IMAGE_DOWNLOAD_FAILED: /);
    expect(await redis.exists(keys.secret(prefix, ref))).toBe(1);

    server.route('/c4.img', { body, lastModified: new Date(0) });
    const result = (await client.waitFor(jobId)) as { destPath: string };
    expect(fs.readFileSync(result.destPath).equals(body)).toBe(true);
    const get = server.requests.filter((r) => r.path === '/c4.img' && r.method === 'GET').pop();
    expect(get?.headers.authorization).toBe(`Basic ${Buffer.from(`u4:${pass}`).toString('base64')}`);
    expect((await client.getJob(jobId))?.attemptsMade).toBeGreaterThanOrEqual(1);
    expect(await redis.exists(keys.secret(prefix, ref))).toBe(0); // dropped by its owner once done
  }, 40_000);
});
