import { Queue, Worker, type Processor } from 'bullmq';
import type { RedisConfig } from '@imagecache/config';
import type { CacheRegistry, Logger } from '@imagecache/core';
import {
  connectRedis,
  describeRedis,
  JOB_NAMES,
  keys,
  prefixOf,
  queueNames,
  SecretStore,
  type RedisClient,
} from '@imagecache/queue';
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
  logger: Logger;
  /** Records fetch, eviction and cache metrics (metrics.ts); one is made when `metricsPort` is set. */
  metrics?: WorkerMetrics;
  /** Serves /metrics, /healthz and /readyz on this port (0: any free one); not served when undefined. */
  metricsPort?: number;
  /** Address of the metrics server. Default 127.0.0.1. */
  metricsHost?: string;
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
  private closing?: Promise<void>;
  /** What the workers record (given, or made when `metricsPort` is set), and the server of it. */
  metrics?: WorkerMetrics;
  metricsServer?: MetricsServer;

  constructor(private readonly options: HostWorkerOptions) {}

  async start(): Promise<void> {
    const { host, registry, logger } = this.options;
    const prefix = prefixOf(this.options.redis);
    const command = this.connect();
    const secrets = new SecretStore(command, prefix);
    const sweep = this.options.sweepIntervalSeconds ?? 3600;
    this.metrics =
      this.options.metrics ?? (this.options.metricsPort !== undefined ? new WorkerMetrics() : undefined);
    for (const cache of registry.caches) this.metrics?.watchCache(cache);
    await this.startMetrics(); // first: a port in use fails the start before any job is taken

    for (const cache of registry.caches) {
      await cache.start(); // creates the folder and sweeps work left by crashed processes
      this.run(
        queueNames.fetch(host, cache.name),
        fetchProcessor(cache, secrets),
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
    this.run(queueNames.cleanCaches(host), cleanCachesProcessor(registry, secrets), 1);
    await this.listenForCancels(prefix);
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    logger.info(
      { host, caches: registry.caches.map((c) => c.name), redis: describeRedis(this.options.redis) },
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
        await Promise.race([graceful, new Promise((r) => setTimeout(r, 5000).unref())]);
        await Promise.all(this.workers.map((w) => w.close(true)));
      }
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

  private run(name: string, processor: Processor, concurrency: number): void {
    const worker = new Worker(name, processor, {
      connection: this.connect(),
      prefix: prefixOf(this.options.redis),
      concurrency,
      lockDuration: this.options.lockDurationMs ?? 60_000,
      // A job whose worker died is picked up again after its lock expires; twice, then it fails.
      maxStalledCount: 2,
      stalledInterval: Math.min(30_000, this.options.lockDurationMs ?? 60_000),
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
