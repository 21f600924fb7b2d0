import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '@imagecache/config';
import { QueueUnavailable, redactHref } from '@imagecache/errors';
import { DEFAULT_PREFIX } from './names';
import { SentinelSwitchFollower } from './sentinel-switch-follower';

export type RedisClient = Redis | Cluster;

/**
 * Who the connection is for. Producers fail fast when Redis is down (no offline queue, one retry);
 * workers and event listeners wait for it forever (`maxRetriesPerRequest: null`, as BullMQ requires).
 */
export type ConnectionRole = 'producer' | 'worker';

/** A Redis connection for a single URL, Sentinel or Cluster deployment (config `redis`). */
export function connectRedis(config: RedisConfig | string, role: ConnectionRole): RedisClient {
  const c: RedisConfig =
    typeof config === 'string' ? { mode: 'standalone', url: config, prefix: DEFAULT_PREFIX } : config;
  const base: RedisOptions = {
    username: c.username,
    password: c.password,
    ...(c.tls ? { tls: {} } : {}),
    lazyConnect: false,
    ...(role === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000 }
      : { maxRetriesPerRequest: null, enableReadyCheck: true }),
  };
  let client: RedisClient;
  if (c.mode === 'cluster') {
    client = new Cluster(c.cluster, {
      redisOptions: base,
      enableOfflineQueue: role !== 'producer',
      // While a failover settles, nodes answer MOVED to each other: retried at once (ioredis' default), a command
      // spent its 16 redirections in milliseconds and failed (QUEUE_UNAVAILABLE) before the cluster agreed.
      retryDelayOnMoved: 100,
    });
  } else if (c.mode === 'sentinel') {
    const sentinel = new Redis({ ...base, sentinels: c.sentinels, name: c.name, db: c.db });
    SentinelSwitchFollower.follow(sentinel, c);
    client = sentinel;
  } else {
    client = new Redis(c.url, { ...base, ...(c.db !== undefined ? { db: c.db } : {}) });
  }
  // Errors surface on the commands that fail; without a listener ioredis would print each reconnect attempt.
  client.on('error', () => undefined);
  return client;
}

export function prefixOf(config: RedisConfig | string | undefined): string {
  return typeof config === 'object' ? config.prefix : DEFAULT_PREFIX;
}

/** Redis is down or refused the command: a typed, retryable error naming where it was (no password). */
export function queueUnavailable(err: unknown, where: string): QueueUnavailable {
  const reason = err instanceof Error ? err.message : String(err);
  return new QueueUnavailable(`Redis at ${redactHref(where)} is not available: ${reason}`, { cause: err });
}

export function describeRedis(config: RedisConfig | string): string {
  if (typeof config === 'string') return redactHref(config);
  if (config.mode === 'standalone') return redactHref(config.url);
  if (config.mode === 'sentinel') return `sentinel ${config.name}`;
  return `cluster ${config.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
}

/** Resolves when the connection is ready, or has failed, or after `ms`: whichever comes first. */
export function whenSettled(redis: RedisClient, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    redis.once('ready', done);
    redis.once('error', done);
  });
}

/** `p`, or a rejection after `ms` (health checks must answer even when Redis doesn't). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

/** A Sentinel or Cluster deployment: a write is on a replica only once WAIT says so. */
export function isReplicated(redis: RedisConfig | string): boolean {
  return typeof redis === 'object' && redis.mode !== 'standalone';
}
