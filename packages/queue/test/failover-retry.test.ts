// A call's steps before its job is queued (the live-worker check, the credentials' stash, the add) are tried again
// while Redis refuses them, as it does for a few seconds of a failover; a Cluster answered one such check with "Too
// many Cluster redirections" and its caller got QUEUE_UNAVAILABLE in the middle of a kill -9 test. Here a Redis of
// the test's own refuses the very commands (an ACL that lacks them, given back after a moment): the caller gets its
// result; a refusal that outlasts the retries still ends in QUEUE_UNAVAILABLE.
import { randomBytes } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueUnavailable } from '@imagecache/errors';
import { ImageCacheClient, WorkerRegistry, queueNames } from '@imagecache/queue';
import { startRedisServer, tmpDir, type RedisServerProcess } from '@imagecache/testing';

const prefix = `{imagecache-test-${randomBytes(4).toString('hex')}}`;
const queueName = queueNames.fetch('retry-host', 'instance');
let server: RedisServerProcess;
let admin: Redis;
let worker: Worker;
/** BullMQ never closes a connection it was given. */
let workerConnection: Redis;
const clients: ImageCacheClient[] = [];

beforeAll(async () => {
  server = await startRedisServer(tmpDir('imagecache-retry-redis-'), () => [
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  admin = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: null });
  await admin.call('ACL', 'SETUSER', 'caller', 'on', '>caller-pw', '~*', '&*', '+@all');
  // A live worker, announced as the real ones are, that answers every fetch with its destination.
  await new WorkerRegistry(admin, prefix).announce({
    id: 'w1',
    host: 'retry-host',
    caches: ['instance'],
    queues: [queueName],
    pid: process.pid,
    hostname: 'test',
    startedAt: Date.now(),
    ttlMs: 600_000,
  });
  workerConnection = admin.duplicate({ maxRetriesPerRequest: null });
  worker = new Worker(queueName, async (job: Job) => ({ destPath: (job.data as { dest: string }).dest }), {
    connection: workerConnection,
    prefix,
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await worker.close();
  workerConnection.disconnect();
  admin.disconnect();
  await server.kill();
});

const newClient = () => {
  const c = new ImageCacheClient({
    redis: {
      mode: 'standalone',
      url: `redis://127.0.0.1:${server.port}`,
      username: 'caller',
      password: 'caller-pw',
      prefix,
    },
    pollIntervalMs: 200,
  });
  clients.push(c);
  return c;
};

/** The caller's user loses `commands` (e.g. `-smembers`) until the returned function gives them back. */
async function refuse(...commands: string[]): Promise<() => Promise<unknown>> {
  await admin.call('ACL', 'SETUSER', 'caller', ...commands);
  return () => admin.call('ACL', 'SETUSER', 'caller', '+@all');
}

const request = (name: string) => ({
  host: 'retry-host',
  cache: 'instance',
  href: `https://bob:hunter22@images.local/${name}.img`,
  dest: `/srv/${name}`,
});

test('a live-worker check and a stash Redis refuses for a moment are tried again: the caller gets its result', async () => {
  const client = newClient();
  await client.fetchImage(request('warm-up')); // connected, the registry read once
  await new Promise((r) => setTimeout(r, 1100)); // its answer no longer reused: read again
  // The worker registry's read and the credentials' write both refused for 1.5 s.
  const giveBack = await refuse('-smembers', '-set');
  const started = Date.now();
  const call = client.fetchImage(request('refused'));
  await new Promise((r) => setTimeout(r, 1500));
  await giveBack();
  expect(await call).toEqual({ destPath: '/srv/refused' });
  expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
});

test('a refusal that outlasts the retries (10 s) ends in QUEUE_UNAVAILABLE, nothing queued', async () => {
  const client = newClient();
  await client.fetchImage(request('warm-up-2'));
  await new Promise((r) => setTimeout(r, 1100));
  const giveBack = await refuse('-smembers');
  try {
    const started = Date.now();
    const err = await client.fetchImage(request('never')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueUnavailable);
    expect((err as QueueUnavailable).message).toMatch(/NOPERM/);
    expect((err as QueueUnavailable).message).not.toContain('caller-pw');
    expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
    const ids = await admin.keys(`${prefix}:${queueName}:*`);
    expect(ids.filter((k) => k.includes('never'))).toEqual([]);
  } finally {
    await giveBack();
  }
}, 30_000);
