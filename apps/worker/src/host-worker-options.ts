import { ConfigError } from '@imagecache/errors';
import type { Host } from '@imagecache/host';
import type { HostWorkerOptions } from './host-worker';

/** What the configuration decides, the rest (grace, lock, heartbeat, metrics, logger) is the launcher's. */
export type LauncherOptions = Omit<
  HostWorkerOptions,
  'host' | 'registry' | 'redis' | 'concurrency' | 'sweepIntervalSeconds'
>;

/**
 * The workers of a host opened from its configuration (@imagecache/host's `openHost`): its queues are named by
 * its `host`, one set per cache, on its `redis`, `downloadConcurrency` fetches at once, a clean-up every
 * `sweepInterval`.
 */
export function hostWorkerOptions(host: Host, opts: LauncherOptions): HostWorkerOptions {
  const { config } = host;
  if (!config.redis)
    throw new ConfigError('the configuration has no `redis` section (or IMAGECACHE_REDIS_URL)');
  return {
    ...opts,
    host: config.host,
    registry: host.registry,
    redis: config.redis,
    concurrency: config.downloadConcurrency,
    sweepIntervalSeconds: config.sweepInterval,
  };
}
