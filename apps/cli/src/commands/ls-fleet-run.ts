import { formatSize, loadConfig } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { CommandContext } from '../program';
import type { LsFlags } from './ls';

/** `imagecache ls --fleet`: which hosts hold which image, read from the fleet's directory in Redis. */
export async function runLsFleet(ctx: CommandContext, flags: LsFlags): Promise<void> {
  if (flags.host !== undefined || flags.cache !== undefined || flags.masterDir !== undefined)
    throw new UsageError('--fleet lists every host and cache: --host, --cache and --master-dir do not apply');
  const redis =
    flags.redis !== undefined
      ? { mode: 'standalone' as const, url: flags.redis, prefix: flags.redisPrefix ?? '{imagecache}' }
      : flags.config !== undefined
        ? loadConfig({ file: flags.config }).redis
        : undefined;
  if (!redis) throw new UsageError('--fleet needs --redis URL, or --config FILE with a `redis` section');
  // Loaded here: ioredis is not needed by the embedded verbs (start-up time).
  const { connectRedis, FleetDirectory, queueUnavailable, whenSettled } = await import('@imagecache/queue');
  const client = connectRedis(redis, 'producer');
  try {
    await whenSettled(client, 5000);
    const view = await new FleetDirectory(client, redis.prefix).view().catch((err: unknown) => {
      throw queueUnavailable(err, redis.mode === 'standalone' ? redis.url : redis.mode);
    });
    ctx.output.result(view, () =>
      [
        `${view.hosts.filter((h) => h.live).length} of ${view.hosts.length} host(s) live${view.hosts.length ? `: ${view.hosts.map((h) => `${h.host}${h.live ? '' : ' (gone)'}`).join(', ')}` : ''}`,
        `${view.images.length} image(s) in the fleet`,
        ...view.images.flatMap((i) => [
          `${i.name}  (${i.validator})`,
          ...i.holders.map(
            (h) =>
              `  ${h.host}/${h.cache}  ${h.live ? 'live' : 'gone'}${h.group ? `  group=${h.group}` : ''}  ${formatSize(h.size)}  sha256=${h.sha256}${h.converted ? '  converted' : ''}`,
          ),
        ]),
        ...Object.entries(view.skippedPeers).map(([k, n]) => `skipped peer ${k}: ${n}`),
      ].join('\n'),
    );
  } finally {
    client.disconnect();
  }
}
