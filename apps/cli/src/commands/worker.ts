import type { Command } from 'commander';
import { loadConfig, requireDestinationPolicy } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { CommandContext } from '../program';

export function registerWorker(program: Command, ctx: CommandContext): void {
  program
    .command('worker')
    .description(
      "run this host's queue workers (one set per cache) until SIGTERM/SIGINT; needs `redis` in the config",
    )
    .requiredOption('--config <file>', 'host configuration (its caches and redis)')
    .option(
      '--grace <seconds>',
      'on SIGTERM, let running jobs finish this long before handing them back',
      '30',
    )
    .option('--lock-duration <seconds>', "a job's lock; a dead worker's jobs are taken over after it", '60')
    .option(
      '--heartbeat-ttl <seconds>',
      "life of this worker's announcement in Redis without a heartbeat (refreshed every fifth of it)",
      '15',
    )
    .option(
      '--metrics-port <port>',
      'serve /metrics, /healthz and /readyz on this port (default: not served)',
    )
    .option('--metrics-bind <address>', 'address of the metrics server', '127.0.0.1')
    .action(
      async (flags: {
        config: string;
        grace: string;
        lockDuration: string;
        heartbeatTtl: string;
        metricsPort?: string;
        metricsBind: string;
      }) => {
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
        const host = ctx.openHost(config);
        // Loaded here: BullMQ and ioredis are not needed by the embedded verbs (start-up time).
        const { HostWorker, installCrashHandlers } = await import('@imagecache/worker');
        const logger = ctx.logger();
        // Before any job runs: a job's stray rejection fails that job; anything else ends the process (status 1).
        installCrashHandlers(logger);
        const worker = new HostWorker({
          host: config.host,
          registry: host.registry,
          redis: config.redis,
          concurrency: config.downloadConcurrency,
          sweepIntervalSeconds: config.sweepInterval,
          gracePeriodMs: Number(flags.grace) * 1000,
          lockDurationMs: Number(flags.lockDuration) * 1000,
          heartbeatTtlMs: Number(flags.heartbeatTtl) * 1000,
          metricsPort: flags.metricsPort === undefined ? undefined : Number(flags.metricsPort),
          metricsHost: flags.metricsBind,
          logger,
        });
        await worker.start();
        process.stderr.write(
          `imagecache worker: serving ${config.caches.length} cache(s) of host ${config.host}\n`,
        );
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await worker.close();
      },
    );
}
