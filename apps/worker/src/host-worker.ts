import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import { Queue, Worker, type Processor } from 'bullmq';
import type { RedisConfig } from '@imagecache/config';
import type { CacheRegistry, Logger } from '@imagecache/core';
import { PeerServer, type PeerServerOptions } from '@imagecache/peers';
import {
  connectRedis,
  DEFAULT_HEARTBEAT_TTL_MS,
  describeRedis,
  JOB_NAMES,
  keys,
  prefixOf,
  queueNames,
  ResultStore,
  SecretStore,
  WorkerHeartbeat,
  WorkerRegistry,
  type RedisClient,
} from '@imagecache/queue';
import { contained } from './containment';
import { joinFleet, type FleetMembership } from './fleet-member';
import type { RedisFleet } from './redis-fleet';
import { serveMetrics, WorkerMetrics, type MetricsServer } from './metrics';
import { cleanCachesProcessor, cleanProcessor } from './processors/clean';
import { fetchProcessor } from './processors/fetch';
import { SHUTDOWN } from './processors/outcome';

export interface HostWorkerOptions {
  /** This host's name: the queues it serves are named by it. */
  host: string;
  /** The host's caches (one set of queues per cache). */
  registry: CacheRegistry;
  redis: RedisConfig | string;
  /** Fetch jobs run at once per cache, in this process. Default 20 (the engine's download limit still applies). */
  concurrency?: number;
  /** Seconds between scheduled clean-ups of each cache; 0 = none. Default 3600. */
  sweepIntervalSeconds?: number;
  /** How long close() lets running jobs finish before it cancels them. Default 30 s. */
  gracePeriodMs?: number;
  /** A job's lock, renewed every half of it while the job runs. Default 60 s. */
  lockDurationMs?: number;
  /**
   * Life of this process's announcement in Redis without a heartbeat (refreshed every fifth of it). Callers,
   * the API's /readyz and its metrics count a worker as gone this long after its last beat. Default 15 s.
   */
  heartbeatTtlMs?: number;
  logger: Logger;
  /** Records fetch, eviction and cache metrics (metrics.ts); one is made when `metricsPort` is set. */
  metrics?: WorkerMetrics;
  /** Serves /metrics, /healthz and /readyz on this port (0: any free one); not served when undefined. */
  metricsPort?: number;
  /** Address of the metrics server. Default 127.0.0.1. */
  metricsHost?: string;
  /** Take part in a fleet (config `peers.enabled`): misses ask peers first, one host downloads from the origin. */
  fleet?: FleetMembership;
  /**
   * Serves this host's published masters to the other hosts of its fleet (the caches of `registry`); not served
   * when undefined. Started before any job is taken (a port in use fails the start), closed last.
   */
  peerService?: Omit<PeerServerOptions, 'caches' | 'logger' | 'onRequest'>;
}

/** A job's lock by default: renewed every half of it while the job runs; a dead worker's jobs wait this long. */
export const DEFAULT_LOCK_DURATION_MS = 60_000;
/** How long a shutdown waits, after the grace period, for cancelled jobs to hand themselves back. */
export const FORCED_STOP_MS = 5000;
/** Times a job may be taken over from a dead worker before it fails (a job that crashes every worker). */
export const MAX_STALLED_COUNT = 2;

/** How often live workers look for jobs whose lock expired: every 30 s, or every lock duration when shorter. */
export function stalledIntervalFor(lockDurationMs: number): number {
  return Math.min(30_000, lockDurationMs);
}

/**
 * The BullMQ workers of one host: for each cache, a fetch queue and a clean queue (global concurrency 1, so one
 * clean-up at a time across every replica); for the host, a clean-caches queue. Cancel requests arrive on a
 * pub/sub channel and reach the job wherever it runs.
 */
export class HostWorker {
  readonly workers: Worker[] = [];
  private readonly queues: Queue[] = [];
  private readonly connections: RedisClient[] = [];
  private subscriber?: RedisClient;
  private heartbeat?: WorkerHeartbeat;
  private closing?: Promise<void>;
  /** What the workers record (given, or made when `metricsPort` is set), and the server of it. */
  metrics?: WorkerMetrics;
  metricsServer?: MetricsServer;
  /** The peer service, once started (`peerService`). */
  peerServer?: PeerServer;
  /** The port the peer service listens on (the one bound, when 0 was asked). */
  peerPort?: number;

  /** The jobs' credentials (a job failed by containment releases its own too). */
  private secrets?: SecretStore;
  /** The fleet this host's caches share masters with (when `fleet` is given). */
  fleet?: RedisFleet;

  constructor(private readonly options: HostWorkerOptions) {}

  async start(): Promise<void> {
    const { host, registry, logger } = this.options;
    const prefix = prefixOf(this.options.redis);
    const command = this.connect();
    const secrets = new SecretStore(command, prefix);
    this.secrets = secrets;
    const results = new ResultStore(command, prefix);
    const sweep = this.options.sweepIntervalSeconds ?? 3600;
    this.metrics =
      this.options.metrics ?? (this.options.metricsPort !== undefined ? new WorkerMetrics() : undefined);
    for (const cache of registry.caches) this.metrics?.watchCache(cache);
    await this.startMetrics(); // first: a port in use fails the start before any job is taken
    await this.startPeerService();
    if (this.options.fleet) {
      this.fleet = await joinFleet({
        host,
        peerPort: this.peerPort,
        membership: this.options.fleet,
        registry,
        redis: command,
        prefix,
        logger,
        heartbeatTtlMs: this.options.heartbeatTtlMs,
        onPeerFailed: (peer, reason) => this.metrics?.peerSkipped(peer, reason),
      });
    }

    for (const cache of registry.caches) {
      await cache.start(); // creates the folder and sweeps work left by crashed processes
      this.run(
        queueNames.fetch(host, cache.name),
        fetchProcessor(cache, secrets, results),
        this.options.concurrency ?? 20,
      );
      const cleanName = queueNames.clean(host, cache.name);
      this.run(cleanName, cleanProcessor(cache), 1);
      const cleanQueue = this.queue(cleanName);
      await cleanQueue.setGlobalConcurrency(1);
      if (sweep > 0) {
        await cleanQueue.upsertJobScheduler(
          'sweep',
          { every: sweep * 1000 },
          { name: JOB_NAMES.clean, data: {} },
        );
      } else {
        await cleanQueue.removeJobScheduler('sweep');
      }
    }
    const cleanCachesName = queueNames.cleanCaches(host);
    this.run(cleanCachesName, cleanCachesProcessor(registry, secrets), 1);
    // One clean-caches at a time on the host, whatever the replicas: two would each count the same free space.
    await this.queue(cleanCachesName).setGlobalConcurrency(1);
    await this.listenForCancels(prefix);
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    await this.announce(prefix);
    const lockDurationMs = this.options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
    logger.info(
      {
        host,
        caches: registry.caches.map((c) => c.name),
        redis: describeRedis(this.options.redis),
        // What an operator needs to know of a crash: when its jobs are taken over, when it is counted out.
        lockDurationMs,
        stalledIntervalMs: stalledIntervalFor(lockDurationMs),
        heartbeatTtlMs: this.options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS,
      },
      'worker started',
    );
  }

  /**
   * Stops taking jobs and lets running ones finish for the grace period; then cancels them, which hands them
   * back to the queue (another replica, or this one after a restart, continues them).
   */
  close(gracePeriodMs = this.options.gracePeriodMs ?? 30_000): Promise<void> {
    this.closing ??= (async () => {
      const { logger } = this.options;
      const graceful = Promise.all(this.workers.map((w) => w.close()));
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), gracePeriodMs).unref()),
      ]);
      if (timedOut) {
        logger.warn({ gracePeriodMs }, 'grace period over: handing running jobs back');
        for (const w of this.workers) w.cancelAllJobs(SHUTDOWN);
        // BullMQ's forced close waits on its graceful one once that has begun: a stage that ignores its signal
        // would hold the shutdown up for ever. Bounded here instead: such a job is left to the stalled-job
        // check (its lock is no longer renewed once the connections close), which hands it to a replica.
        const stopped = await Promise.race([
          graceful.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), FORCED_STOP_MS).unref()),
        ]);
        if (!stopped) {
          logger.warn(
            { forcedStopMs: FORCED_STOP_MS },
            'jobs ignored their cancel: stopping without them (the stalled-job check hands them on)',
          );
        }
      }
      // Last: while its jobs run, this process still serves their queues (their callers wait for them).
      await this.heartbeat?.stop();
      this.fleet?.stop();
      await this.peerServer?.close();
      await this.metricsServer?.close();
      await Promise.all(this.queues.map((q) => q.close()));
      this.subscriber?.disconnect();
      for (const c of this.connections) c.disconnect();
      logger.info({}, 'worker stopped');
    })();
    return this.closing;
  }

  private async startMetrics(): Promise<void> {
    const { metricsPort, metricsHost: host, registry, redis, logger } = this.options;
    if (!this.metrics || metricsPort === undefined) return;
    const metrics = this.metrics;
    this.metricsServer = await serveMetrics({
      metrics,
      workers: this.workers,
      registry,
      redis,
      port: metricsPort,
      host,
      logger,
    });
  }

  private async startPeerService(): Promise<void> {
    const { peerService, registry, logger } = this.options;
    if (!peerService) return;
    const server = new PeerServer({
      ...peerService,
      caches: registry.caches.map((c) => ({ name: c.name, masterDir: c.masterDir })),
      logger,
      onRequest: (e) => this.metrics?.recordPeerRequest(e),
    });
    this.peerPort = (await server.start()).port;
    this.peerServer = server;
  }

  /** Tells callers and the API, through Redis, which queues this process serves, for as long as it beats. */
  private async announce(prefix: string): Promise<void> {
    const { host, registry } = this.options;
    const connection = this.connect();
    this.heartbeat = new WorkerHeartbeat(new WorkerRegistry(connection, prefix), {
      id: `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
      host,
      caches: registry.caches.map((c) => c.name),
      queues: this.workers.map((w) => w.name),
      pid: process.pid,
      hostname: os.hostname(),
      startedAt: Date.now(),
      ttlMs: this.options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS,
    });
    await this.heartbeat.start();
    // Redis back after an outage: announce at once, not a beat later (the announcement may have expired).
    connection.on('ready', () => this.heartbeat?.beat());
  }

  private run(name: string, processor: Processor, concurrency: number): void {
    const lockDuration = this.options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
    const worker = new Worker(name, contained(name, processor, this.secrets), {
      connection: this.connect(),
      prefix: prefixOf(this.options.redis),
      concurrency,
      lockDuration,
      // A job whose worker died (crash, kill -9) keeps its lock until it expires; the stalled-job check, run by
      // every live worker of the queue every stalledInterval, then puts it back in the queue. A job taken over
      // this way more than maxStalledCount times (it keeps killing its workers) fails instead.
      maxStalledCount: MAX_STALLED_COUNT,
      stalledInterval: stalledIntervalFor(lockDuration),
    });
    worker.on('error', (err) => this.options.logger.warn({ err: err.message, queue: name }, 'queue error'));
    worker.on('failed', (job, err) =>
      this.options.logger.info({ queue: name, job: job?.id, reason: err.message }, 'job attempt failed'),
    );
    this.metrics?.watchWorker(worker);
    this.workers.push(worker);
  }

  private queue(name: string): Queue {
    const q = new Queue(name, { connection: this.connect(), prefix: prefixOf(this.options.redis) });
    q.on('error', () => undefined);
    this.queues.push(q);
    return q;
  }

  private connect(): RedisClient {
    const c = connectRedis(this.options.redis, 'worker');
    this.connections.push(c);
    return c;
  }

  private async listenForCancels(prefix: string): Promise<void> {
    this.subscriber = connectRedis(this.options.redis, 'worker');
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const { jobId, reason } = JSON.parse(message) as { jobId: string; reason?: string };
        for (const w of this.workers) {
          if (w.cancelJob(jobId, reason ?? 'cancelled'))
            this.options.logger.info({ job: jobId }, 'job cancelled');
        }
      } catch {
        // not ours
      }
    });
    await this.subscriber.subscribe(keys.cancelChannel(prefix));
  }
}
