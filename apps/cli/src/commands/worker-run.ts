import { loadConfig, requireDestinationPolicy } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { CommandContext } from '../program';
import type { WorkerFlags } from './worker';

/** `imagecache worker`: this host's queue workers until the signal. */
export async function runWorker(ctx: CommandContext, flags: WorkerFlags): Promise<void> {
  for (const [flag, value] of [
    ['--grace', flags.grace],
    ['--lock-duration', flags.lockDuration],
    ['--heartbeat-ttl', flags.heartbeatTtl],
  ] as const) {
    if (!/^\d+(\.\d+)?$/.test(value))
      throw new UsageError(`${flag} takes seconds, got ${JSON.stringify(value)}`);
  }
  if (Number(flags.heartbeatTtl) < 1)
    throw new UsageError(`--heartbeat-ttl must be at least 1 second, got ${flags.heartbeatTtl}`);
  const config = loadConfig({ file: flags.config });
  if (!config.redis)
    throw new UsageError('the configuration has no `redis` section (or IMAGECACHE_REDIS_URL)');
  requireDestinationPolicy(config, 'worker');
  const host = await ctx.openHost(config);
  // Loaded here: BullMQ and ioredis are not needed by the embedded verbs (start-up time).
  const { HostWorker, hostWorkerOptions, installCrashHandlers } = await import('@imagecache/worker');
  const logger = await ctx.logger();
  // Before any job runs: a job's stray rejection fails that job; anything else ends the process (status 1).
  installCrashHandlers(logger);
  const worker = new HostWorker(
    hostWorkerOptions(host, {
      gracePeriodMs: Number(flags.grace) * 1000,
      lockDurationMs: Number(flags.lockDuration) * 1000,
      heartbeatTtlMs: Number(flags.heartbeatTtl) * 1000,
      metricsPort: flags.metricsPort === undefined ? undefined : Number(flags.metricsPort),
      metricsHost: flags.metricsBind,
      logger,
    }),
  );
  await worker.start();
  process.stderr.write(
    `imagecache worker: serving ${config.caches.length} cache(s) of host ${config.host}\n`,
  );
  await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  await worker.close();
}
