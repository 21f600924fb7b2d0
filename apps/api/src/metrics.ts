import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { WorkerLiveness } from './liveness';
import { parseQueueName, type QueueDirectory } from './queues';

/** Job states whose counts /metrics reports per queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

export const API_METRIC_NAMES = [
  'imagecache_queue_jobs',
  'imagecache_redis_up',
  'imagecache_workers_live',
  'imagecache_api_requests_total',
] as const;

export interface ApiMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
}

/**
 * The API's metrics, in a registry of its own: queue depth per queue and state, read from Redis when scraped
 * (labels host, cache, kind, state; never an image), whether Redis answered, and the requests served by route.
 */
export function createApiMetrics(
  queues: QueueDirectory,
  opts: { ping?: () => Promise<unknown>; defaultMetrics?: boolean; liveness?: WorkerLiveness } = {},
): ApiMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // Both gauges below read one scrape of Redis: prom-client collects metrics concurrently, and calls each
  // collect() synchronously first, so the depth gauge (registered first) starts it before redis_up awaits it.
  let scrape: Promise<boolean> = Promise.resolve(true);
  new Gauge({
    name: 'imagecache_queue_jobs',
    help: 'Jobs in each queue by state (waiting, active, delayed, prioritized, failed, completed), read from Redis at scrape time.',
    labelNames: ['host', 'cache', 'kind', 'state'],
    registers,
    async collect() {
      this.reset();
      const ping = opts.ping?.() ?? Promise.resolve();
      const reads = queues.list().map(async (q) => ({ q, counts: await q.getJobCounts(...QUEUE_STATES) }));
      scrape = Promise.all([ping, Promise.all(reads)])
        .then(([, all]) => all)
        .then(
          (all) => {
            for (const { q, counts } of all) {
              const info = parseQueueName(q.name);
              if (!info) continue;
              for (const state of QUEUE_STATES) {
                this.set({ host: info.host, cache: info.cache, kind: info.kind, state }, counts[state] ?? 0);
              }
            }
            return true;
          },
          // Redis is down: the depth is unknown (no series), imagecache_redis_up says so.
          () => false,
        );
      await scrape;
    },
  });
  new Gauge({
    name: 'imagecache_redis_up',
    help: '1 when Redis answered the queue-depth reads of this scrape, else 0.',
    registers,
    async collect() {
      this.set((await scrape) ? 1 : 0);
    },
  });
  const liveness = opts.liveness;
  if (liveness) {
    new Gauge({
      name: 'imagecache_workers_live',
      help: 'Worker processes whose heartbeat is alive, per cache (0: no live worker serves that configured cache).',
      labelNames: ['host', 'cache'],
      registers,
      async collect() {
        this.reset();
        // Redis down: unknown, no series (imagecache_redis_up says so).
        const all = await liveness.read().catch(() => []);
        for (const e of all) this.set({ host: e.host, cache: e.cache }, e.workers);
      },
    });
  }
  const requests = new Counter({
    name: 'imagecache_api_requests_total',
    help: 'HTTP requests answered by the API, by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  return { registry, requests };
}
