// A caller whose job Redis lost (a failover's asynchronous replication: the add never reached the new master) adds
// it again under the same id, with its credentials; a cancelled job never comes back. Real Redis at 127.0.0.1:6379,
// a prefix of this test's own; the loss is made with real Redis commands (the job's hash and its place in the wait
// list deleted, as a master that never received them), a BullMQ worker of the test's own runs the jobs.
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { OperationAborted, QueueUnavailable } from '@imagecache/errors';
import {
  CancelRecord,
  ImageCacheClient,
  JOB_NAMES,
  MAX_READDS,
  SecretStore,
  keys,
  queueNames,
} from '@imagecache/queue';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `{imagecache-test-${randomBytes(4).toString('hex')}}`;
const queueName = queueNames.fetch('lost-host', 'instance');
let redis: Redis;
let queue: Queue;
const clients: ImageCacheClient[] = [];
let worker: Worker | undefined;
/** BullMQ never closes a connection it was given. */
const connections: Redis[] = [];

const newClient = (opts: { unavailableAfterMs?: number } = {}) => {
  const c = new ImageCacheClient({
    redis: { mode: 'standalone', url, prefix },
    pollIntervalMs: 100,
    requireLiveWorker: false,
    ...opts,
  });
  clients.push(c);
  return c;
};

beforeAll(() => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(queueName, { connection: redis, prefix });
});

afterEach(async () => {
  await worker?.close();
  worker = undefined;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await queue.close();
  for (const c of connections) c.disconnect();
  const left = await redis.keys(`${prefix}*`);
  if (left.length) await redis.del(...left);
  redis.disconnect();
});

/** Until the job is in Redis (added, or added again by its caller); its data. */
async function present(jobId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const job = await queue.getJob(jobId);
    if (job) return job.data as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`job ${jobId} never showed up`);
}

/** Redis loses the job (and its credentials), as a new master that never received them: no event, nothing kept. */
async function lose(jobId: string): Promise<void> {
  const data = await present(jobId);
  await redis.lrem(`${prefix}:${queueName}:wait`, 0, jobId);
  await redis.del(`${prefix}:${queueName}:${jobId}`);
  if (typeof data.credentialsRef === 'string') await redis.del(keys.secret(prefix, data.credentialsRef));
  expect(await queue.getJob(jobId)).toBeUndefined();
}

/** Each fetch "done" by a worker that reads its credentials as the real one does. */
function startWorker(runs: string[]): void {
  const secrets = new SecretStore(redis, prefix);
  worker = new Worker(
    queueName,
    async (job: Job) => {
      runs.push(job.id!);
      const data = job.data as { dest: string; credentialsRef?: string };
      const secret = await secrets.claim(data.credentialsRef!, job.id, JOB_NAMES.fetch);
      return { destPath: data.dest, withCredentials: secret.href.includes('bob:hunter22@') };
    },
    {
      connection: connections[connections.push(redis.duplicate({ maxRetriesPerRequest: null })) - 1]!,
      prefix,
    },
  );
}

/** The client's job id: the only job of the queue not taken by another test. */
async function jobOf(before: Set<string>): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed']);
    const mine = jobs.find((j) => !before.has(j.id!));
    if (mine) return mine.id!;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no job was added');
}

async function known(): Promise<Set<string>> {
  const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed']);
  return new Set(jobs.map((j) => j.id!));
}

const request = (name: string) => ({
  host: 'lost-host',
  cache: 'instance',
  href: `https://bob:hunter22@images.local/${name}.img`,
  dest: `/srv/${name}`,
});

test('a job Redis lost is added again under its id, with the same data and its credentials: its caller gets the result', async () => {
  const client = newClient();
  const before = await known();
  const call = client.fetchImage(request('lost'));
  const jobId = await jobOf(before);
  const added = await present(jobId);
  await lose(jobId);

  // Added again by the waiting caller: same id, same data, the credentials stashed again under the same reference.
  const again = await present(jobId);
  expect(again).toEqual(added);
  expect(await redis.exists(keys.secret(prefix, added.credentialsRef as string))).toBe(1);

  const runs: string[] = [];
  startWorker(runs);
  expect(await call).toEqual({ destPath: '/srv/lost', withCredentials: true });
  expect(runs).toEqual([jobId]);
  // Nothing of the request's credentials in the job as stored.
  expect(JSON.stringify(again)).not.toContain('hunter22');
});

test('enqueued then waited for (as the API does): a lost job is added again too', async () => {
  const client = newClient();
  const { jobId } = await client.enqueueFetch(request('api'));
  const call = client.waitFor(jobId);
  await lose(jobId);
  await present(jobId);
  startWorker([]);
  expect(await call).toEqual({ destPath: '/srv/api', withCredentials: true });
});

test('a job lost and cancelled (its cancel recorded) is not added again: its caller gets ABORTED', async () => {
  const client = newClient();
  const before = await known();
  const call = client.fetchImage(request('cancelled')).catch((e: unknown) => e);
  const jobId = await jobOf(before);
  // The record another process's cancel() writes (the API's DELETE), whose removal event this caller never saw.
  await new CancelRecord(redis, prefix, false).record(jobId, 'cancelled through the API');
  await lose(jobId);
  const err = await call;
  expect(err).toBeInstanceOf(OperationAborted);
  expect((err as OperationAborted).code).toBe('ABORTED');
  await new Promise((r) => setTimeout(r, 500)); // five polls: nobody adds it again
  expect(await queue.getJob(jobId)).toBeUndefined();
});

test('cancelled through another client (the API): the record outlives the job, the caller gets ABORTED', async () => {
  const client = newClient();
  const api = newClient();
  const before = await known();
  const call = client.fetchImage(request('api-cancel')).catch((e: unknown) => e);
  const jobId = await jobOf(before);
  await api.cancel(jobId, 'cancelled through the API');
  expect(await call).toBeInstanceOf(OperationAborted);
  expect(await redis.get(keys.cancelled(prefix, jobId))).toBe('cancelled through the API');
  expect(await redis.ttl(keys.cancelled(prefix, jobId))).toBeGreaterThan(24 * 3600);
  await new Promise((r) => setTimeout(r, 500));
  expect(await queue.getJob(jobId)).toBeUndefined();
});

test('removed through BullMQ (the board) with no record: its removal event makes it cancelled, not lost', async () => {
  const client = newClient();
  const before = await known();
  const call = client.fetchImage(request('board')).catch((e: unknown) => e);
  const jobId = await jobOf(before);
  await queue.remove(jobId);
  expect(await call).toBeInstanceOf(OperationAborted);
  expect(await redis.exists(keys.cancelled(prefix, jobId))).toBe(0);
  await new Promise((r) => setTimeout(r, 500));
  expect(await queue.getJob(jobId)).toBeUndefined();
});

test(`lost again and again: added again ${MAX_READDS} times at most, then QUEUE_UNAVAILABLE`, async () => {
  const client = newClient({ unavailableAfterMs: 300 });
  const before = await known();
  const call = client.fetchImage(request('cursed')).catch((e: unknown) => e);
  const jobId = await jobOf(before);
  for (let i = 0; i <= MAX_READDS; i++) await lose(jobId);
  const err = await call;
  expect(err).toBeInstanceOf(QueueUnavailable);
  expect((err as Error).message).toContain(`after ${MAX_READDS} re-adds`);
  expect(await queue.getJob(jobId)).toBeUndefined();
});

test('a lost job whose result was kept is not added again: the kept result is the answer', async () => {
  const client = newClient();
  const before = await known();
  const call = client.fetchImage(request('kept'));
  const jobId = await jobOf(before);
  await redis.set(keys.result(prefix, jobId), JSON.stringify({ destPath: '/srv/kept', cacheHit: false }));
  await lose(jobId);
  expect(await call).toEqual({ destPath: '/srv/kept', cacheHit: false });
  await new Promise((r) => setTimeout(r, 300));
  expect(await queue.getJob(jobId)).toBeUndefined();
});
