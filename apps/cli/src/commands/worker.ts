import type { Command } from 'commander';
import type { CommandContext } from '../program';

export interface WorkerFlags {
  config: string;
  grace: string;
  lockDuration: string;
  heartbeatTtl: string;
  metricsPort?: string;
  metricsBind: string;
  peerPort?: string;
  peerBind?: string;
}

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
    .option(
      '--peer-port <port>',
      "serve this host's published masters to the fleet on this port (default peers.port; not served without either)",
    )
    .option('--peer-bind <address>', 'address of the peer service (default peers.bind, 127.0.0.1)')
    .action(async (flags: WorkerFlags) => (await import('./worker-run')).runWorker(ctx, flags));
}
