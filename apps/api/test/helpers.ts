import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import type { RedisConfig } from '@imagecache/config';
import { connectRedis, prefixOf, queueNames, WorkerHeartbeat, WorkerRegistry } from '@imagecache/queue';

export const SHARED_REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A Redis config of the test file's own: a unique prefix, so test files never see each other's queues. */
export function redisConfig(): Extract<RedisConfig, { mode: 'standalone' }> {
  return {
    mode: 'standalone',
    url: SHARED_REDIS,
    prefix: `{imagecache-test-${randomBytes(4).toString('hex')}}`,
  };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A writable stream that keeps what is written (to check logs). */
export function memoryStream(): NodeJS.WritableStream & { text(): string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return Object.assign(s, { text: () => chunks.join('') });
}

export async function until<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  stepMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Deletes every key under a test's prefix (SCAN + DEL), so test runs leave nothing in the shared Redis. */
export async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(SHARED_REDIS, { lazyConnect: false });
  redis.on('error', () => undefined);
  try {
    const match = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}:*`;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * Announces in Redis a worker of `host` serving `caches` that takes no job (as a worker busy elsewhere would):
 * the API and the client then accept jobs for them. Returns the function that withdraws it.
 */
export async function announceIdleWorker(
  redis: RedisConfig,
  host: string,
  caches: string[],
): Promise<() => Promise<void>> {
  const connection = connectRedis(redis, 'worker');
  const heartbeat = new WorkerHeartbeat(new WorkerRegistry(connection, prefixOf(redis)), {
    id: `idle-${randomBytes(4).toString('hex')}`,
    host,
    caches,
    queues: [
      ...caches.flatMap((c) => [queueNames.fetch(host, c), queueNames.clean(host, c)]),
      queueNames.cleanCaches(host),
    ],
    pid: process.pid,
    hostname: 'test',
    startedAt: Date.now(),
    ttlMs: 15_000,
  });
  await heartbeat.start();
  return async () => {
    await heartbeat.stop();
    connection.disconnect();
  };
}
