import { loadConfig, peerAdvertiseUrl, requireDestinationPolicy, type HostConfig } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { FleetMembership } from '@imagecache/worker';
import { sourceOptionsFor } from '@imagecache/host';
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
  const peerService = peerServiceOf(config, flags);
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
      peerService,
      fleet: fleetOf(config, peerService?.bind),
      logger,
    }),
  );
  await worker.start();
  if (peerService && worker.peerPort !== undefined) {
    const url = peerAdvertiseUrl(config.peers, worker.peerPort, peerService.bind);
    process.stderr.write(
      `imagecache worker: peer service on ${peerService.bind}:${worker.peerPort} (${url})\n`,
    );
  }
  process.stderr.write(
    `imagecache worker: serving ${config.caches.length} cache(s) of host ${config.host}\n`,
  );
  await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  await worker.close();
}

/** The peer service's settings: the flags over `peers` of the configuration; undefined when no port is named. */
function peerServiceOf(config: HostConfig, flags: WorkerFlags) {
  const { peers } = config;
  if (flags.peerPort !== undefined && !/^\d{1,5}$/.test(flags.peerPort))
    throw new UsageError(`--peer-port takes a port number, got ${JSON.stringify(flags.peerPort)}`);
  const port = flags.peerPort !== undefined ? Number(flags.peerPort) : peers.port;
  if (port === undefined) return undefined;
  if (port > 65535) throw new UsageError(`--peer-port takes a port number, got ${port}`);
  if (peers.secret === undefined)
    throw new UsageError(
      'the peer service needs peers.secret (or IMAGECACHE_PEERS_SECRET) in the configuration',
    );
  return {
    port,
    bind: flags.peerBind ?? peers.bind,
    secret: peers.secret,
    uploadConcurrency: peers.uploadConcurrency,
    ...(peers.bandwidth !== undefined && { bytesPerSec: peers.bandwidth }),
    ...(peers.tls !== undefined && { tls: { certFile: peers.tls.certFile, keyFile: peers.tls.keyFile } }),
  };
}

/**
 * Fleet mode (`peers.enabled`): misses ask the fleet's peers first, one host at a time downloads an image from the
 * origin. A process without a peer service takes from peers but publishes nothing.
 */
function fleetOf(config: HostConfig, bind: string | undefined): FleetMembership | undefined {
  const { peers } = config;
  if (!peers.enabled) return undefined;
  const http = sourceOptionsFor(config).http;
  return {
    advertiseUrl: (port) => peerAdvertiseUrl(peers, port, bind),
    ...(peers.group !== undefined && { group: peers.group }),
    secret: peers.secret!, // required by the schema when enabled
    tokenTtlSeconds: peers.tokenTtl,
    // The peers' certificates are checked against peers.tls.caFile when given (else the host's http trust).
    http: peers.tls?.caFile ? { ...http, caFile: peers.tls.caFile } : http,
  };
}
