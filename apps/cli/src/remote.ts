import type { HostConfig } from '@imagecache/config';
import type { HostHandle } from '@imagecache/core';
import { UsageError } from '@imagecache/errors';
import type { ImageCacheClient } from '@imagecache/queue';
import type { CommandContext } from './program';

/** Flags of a verb run against a host's workers through Redis instead of in this process. */
export interface RemoteFlags {
  redis?: string;
  /** Key prefix of the deployment (default `{imagecache}`). */
  redisPrefix?: string;
  host?: string;
  cache?: string;
}

function isRemote<T extends RemoteFlags>(flags: T): flags is T & { redis: string } {
  return flags.redis !== undefined;
}

/** Runs `fn` with a client of the Redis given, closing it afterwards. */
async function withClient<T>(
  flags: RemoteFlags & { redis: string },
  fn: (client: ImageCacheClient, host: string) => Promise<T>,
): Promise<T> {
  if (!flags.host) throw new UsageError('--redis needs --host (the host whose workers should do it)');
  // Loaded here: BullMQ and ioredis are not needed by the embedded verbs (start-up time).
  const { ImageCacheClient } = await import('@imagecache/queue');
  const redis = flags.redisPrefix
    ? { mode: 'standalone' as const, url: flags.redis, prefix: flags.redisPrefix }
    : flags.redis;
  const client = new ImageCacheClient({ redis, pollIntervalMs: 2000 });
  try {
    return await fn(client, flags.host);
  } finally {
    await client.close();
  }
}

/**
 * Runs `fn` with the host a verb works on: the caches of this process (from `config()`), or with --redis a host's
 * caches served by its workers (`needsCache`: the verb works on the cache --cache names). Either answers with the
 * engine's types, so the verb calls it once.
 */
export async function withHost<T>(
  ctx: CommandContext,
  flags: RemoteFlags,
  config: () => HostConfig,
  fn: (host: HostHandle) => Promise<T>,
  opts: { needsCache?: boolean } = {},
): Promise<T> {
  if (!isRemote(flags)) return fn(await ctx.openHost(config()));
  // Before any connection is made.
  const caches = opts.needsCache ? [requireCache(flags)] : [];
  return withClient(flags, async (client, host) => {
    // Loaded by withClient already.
    const { RemoteHost } = await import('@imagecache/queue');
    return fn(new RemoteHost(client, host, caches));
  });
}

function requireCache(flags: RemoteFlags): string {
  if (!flags.cache) throw new UsageError('--redis needs --cache (the cache of that host)');
  return flags.cache;
}
