import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job, Worker } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RedisConfig } from '@imagecache/config';
import type {
  CacheRegistry,
  CacheUsage,
  EvictEvent,
  FetchResult,
  ImageCache,
  Logger,
} from '@imagecache/core';
import {
  connectRedis,
  parseQueueName,
  whenSettled,
  withTimeout,
  type JobKind,
  type RedisClient,
} from '@imagecache/queue';

/**
 * Metrics of a worker process (Prometheus text format). Labels never name an image: no href, no
 * destination, no job id — only the cache, the stage, the outcome, the error code and the eviction reason.
 */
export const WORKER_METRIC_NAMES = [
  'imagecache_fetches_total',
  'imagecache_fetch_errors_total',
  'imagecache_downloaded_bytes_total',
  'imagecache_fetch_duration_seconds',
  'imagecache_fetch_stage_duration_seconds',
  'imagecache_jobs_total',
  'imagecache_evictions_total',
  'imagecache_evicted_bytes_total',
  'imagecache_cache_bytes',
  'imagecache_cache_files',
  'imagecache_cache_size_limit_bytes',
  'imagecache_workers_running',
  'imagecache_fleet_peers_skipped_total',
  'imagecache_fleet_misses_total',
  'imagecache_peer_uploads_total',
  'imagecache_peer_bytes_sent_total',
] as const;

/** Seconds: from a warm hit (about a millisecond) to a long download or conversion. */
const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
];

/**
 * How long a cache's usage is reused (several scrapers, or a scrape every second, read the folder once; a
 * clean-up's report counts as a fresh read).
 */
const USAGE_TTL_MS = 5000;

interface QueueOf {
  kind: JobKind | 'other';
  cache: string;
}

/** The kind and cache of a queue (@imagecache/queue reads its names back); `other` for a name not ours. */
export function queueKindOf(queueName: string): QueueOf {
  const info = parseQueueName(queueName);
  return info ? { kind: info.kind, cache: info.cache } : { kind: 'other', cache: '' };
}

/**
 * Records what a host's workers do: job outcomes and failed attempts (BullMQ worker events); hits, misses,
 * bytes and stage times of fetches, and evictions of every clean-up (scheduled, requested, or the evict stage
 * of a fetch), as the caches report them (ImageCache.on); the usage of each master folder, as its last
 * clean-up reported it or read when the metrics are scraped.
 */
export class WorkerMetrics {
  readonly registry: Registry;
  private readonly fetches: Counter<'cache' | 'result'>;
  private readonly fetchErrors: Counter<'cache' | 'code'>;
  private readonly downloaded: Counter<'cache'>;
  private readonly fetchDuration: Histogram<'cache' | 'result'>;
  private readonly stageDuration: Histogram<'cache' | 'stage'>;
  private readonly jobs: Counter<'kind' | 'cache' | 'outcome'>;
  private readonly evictions: Counter<'cache' | 'reason'>;
  private readonly evictedBytes: Counter<'cache' | 'reason'>;
  private readonly peersSkipped: Counter<'peer' | 'reason'>;
  private readonly fleetMisses: Counter<'cache' | 'source'>;
  private readonly peerUploads: Counter<'result'>;
  private readonly peerBytes: Counter;
  private readonly caches = new Map<string, { cache: ImageCache; unsubscribe: (() => void)[] }>();
  private readonly usages = new Map<string, { at: number; usage: Promise<CacheUsage> }>();
  private readonly workers: Worker[] = [];

  constructor(opts: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registers = [(this.registry = opts.registry ?? new Registry())];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.peersSkipped = new Counter({
      name: 'imagecache_fleet_peers_skipped_total',
      help: 'Peers a miss skipped: unverified (its bytes did not match what it published), failed (error, stall, too slow).',
      labelNames: ['peer', 'reason'],
      registers,
    });
    this.fleetMisses = new Counter({
      name: 'imagecache_fleet_misses_total',
      help: 'Misses by where the image came from: origin, or peer (another host of the fleet).',
      labelNames: ['cache', 'source'],
      registers,
    });
    this.fetches = new Counter({
      name: 'imagecache_fetches_total',
      help: 'Fetches by outcome: hit (no download) and miss (downloaded), as the cache reports them; error (a fetch job failed for good).',
      labelNames: ['cache', 'result'],
      registers,
    });
    this.fetchErrors = new Counter({
      name: 'imagecache_fetch_errors_total',
      help: 'Failed fetch attempts (retried ones included), by error code.',
      labelNames: ['cache', 'code'],
      registers,
    });
    this.downloaded = new Counter({
      name: 'imagecache_downloaded_bytes_total',
      help: 'Bytes downloaded by fetch jobs.',
      labelNames: ['cache'],
      registers,
    });
    this.fetchDuration = new Histogram({
      name: 'imagecache_fetch_duration_seconds',
      help: 'Time of a successful fetch in the engine, by hit or miss.',
      labelNames: ['cache', 'result'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.stageDuration = new Histogram({
      name: 'imagecache_fetch_stage_duration_seconds',
      help: 'Time spent in each stage of successful fetches (resolve, wait, download, inspect, convert, …).',
      labelNames: ['cache', 'stage'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.jobs = new Counter({
      name: 'imagecache_jobs_total',
      help: 'Job attempts by kind (fetch, clean, clean-caches) and outcome (completed, retried, failed).',
      labelNames: ['kind', 'cache', 'outcome'],
      registers,
    });
    this.evictions = new Counter({
      name: 'imagecache_evictions_total',
      help: 'Masters evicted, by reason (ttl, size, amount).',
      labelNames: ['cache', 'reason'],
      registers,
    });
    this.evictedBytes = new Counter({
      name: 'imagecache_evicted_bytes_total',
      help: 'Bytes of the masters evicted, by reason.',
      labelNames: ['cache', 'reason'],
      registers,
    });
    this.peerUploads = new Counter({
      name: 'imagecache_peer_uploads_total',
      help: 'Requests for masters served to other hosts (GETs; HEADs when refused), by outcome: served, partial, unauthorized, refused, busy, failed.',
      labelNames: ['result'],
      registers,
    });
    this.peerBytes = new Counter({
      name: 'imagecache_peer_bytes_sent_total',
      help: 'Bytes of masters sent to other hosts by the peer service.',
      registers,
    });
    const caches = () => [...this.caches.values()].map((w) => w.cache);
    const usage = (c: ImageCache) => this.usage(c);
    const scanned = [
      {
        name: 'imagecache_cache_bytes',
        help: 'Allocated bytes of the masters in each cache (its last clean-up, or read at scrape time).',
        pick: 'totalSize',
      },
      {
        name: 'imagecache_cache_files',
        help: 'Masters in each cache (its last clean-up, or read at scrape time).',
        pick: 'count',
      },
    ] as const;
    for (const { name, help, pick } of scanned) {
      new Gauge({
        name,
        help,
        labelNames: ['cache'],
        registers,
        async collect() {
          this.reset();
          for (const c of caches()) {
            const u = await usage(c).catch(() => undefined);
            if (u) this.set({ cache: c.name }, u[pick]);
          }
        },
      });
    }
    new Gauge({
      name: 'imagecache_cache_size_limit_bytes',
      help: 'The configured size of each cache.',
      labelNames: ['cache'],
      registers,
      collect() {
        this.reset();
        for (const c of caches()) this.set({ cache: c.name }, c.cacheSize);
      },
    });
    const workers = this.workers;
    new Gauge({
      name: 'imagecache_workers_running',
      help: 'BullMQ workers of this process that are running, by queue kind.',
      labelNames: ['kind', 'cache'],
      registers,
      collect() {
        this.reset();
        for (const w of workers) {
          const q = queueKindOf(w.name);
          this.inc({ kind: q.kind, cache: q.cache }, w.isRunning() ? 1 : 0);
        }
      },
    });
  }
  /** A peer of the fleet a miss skipped (see Fleet.peerFailed). */
  peerSkipped(peer: string, reason: string): void {
    this.peersSkipped.inc({ peer, reason });
  }

  /** Records one request to the peer service (a HEAD answered is no upload: not counted). */
  recordPeerRequest(e: { method: string; result: string; bytes: number }): void {
    if (e.method === 'HEAD' && e.result === 'served') return;
    this.peerUploads.inc({ result: e.result });
    if (e.bytes > 0) this.peerBytes.inc(e.bytes);
  }

  /** Records the outcomes of a worker's jobs (its queue name tells the kind and the cache). */
  watchWorker(worker: Worker): void {
    const { kind, cache } = queueKindOf(worker.name);
    this.workers.push(worker);
    // A fetch's hit or miss, bytes and stage times come from the cache itself (watchCache).
    worker.on('completed', () => {
      this.jobs.inc({ kind, cache, outcome: 'completed' });
    });
    worker.on('failed', (job: Job | undefined, err: Error) => {
      // BullMQ sets finishedOn only when the job failed for good (no attempt left, or unrecoverable).
      const final = typeof job?.finishedOn === 'number';
      this.jobs.inc({ kind, cache, outcome: final ? 'failed' : 'retried' });
      if (kind !== 'fetch') return;
      const stored = (job?.data as { error?: { code?: unknown } } | undefined)?.error?.code;
      const code =
        typeof stored === 'string'
          ? stored
          : (/^([A-Z][A-Z_]+):/.exec(err.message)?.[1] ?? 'IMAGECACHE_ERROR');
      this.fetchErrors.inc({ cache, code });
      if (final) this.fetches.inc({ cache, result: 'error' });
    });
  }

  /** Records the fetches and evictions the cache reports, and its usage at scrape time. */
  watchCache(cache: ImageCache): void {
    const watched = this.caches.get(cache.name);
    if (watched?.cache === cache) return;
    for (const off of watched?.unsubscribe ?? []) off();
    const name = cache.name;
    this.caches.set(name, {
      cache,
      unsubscribe: [
        cache.on('fetch', (e) => {
          if (e.outcome !== 'error') this.recordFetch(name, e.result);
        }),
        cache.on('evict', (e) => this.recordEviction(name, e)),
        // A fresh total: the next scrape need not read the folder again.
        cache.on('usage', (u) => this.usages.set(name, { at: Date.now(), usage: Promise.resolve(u) })),
      ],
    });
  }

  /** Watches the workers and caches of a host (HostWorker calls this once its workers exist). */
  watch(workers: readonly Worker[], registry: CacheRegistry): void {
    for (const w of workers) this.watchWorker(w);
    for (const c of registry.caches) this.watchCache(c);
  }

  recordFetch(cache: string, r: FetchResult): void {
    const result = r.cacheHit ? 'hit' : 'miss';
    this.fetches.inc({ cache, result });
    if (!r.cacheHit) this.fleetMisses.inc({ cache, source: r.peer === undefined ? 'origin' : 'peer' });
    if (r.bytesDownloaded > 0) this.downloaded.inc({ cache }, r.bytesDownloaded);
    const { total, ...stages } = r.durations ?? { total: 0 };
    if (typeof total === 'number') this.fetchDuration.observe({ cache, result }, total / 1000);
    for (const [stage, ms] of Object.entries(stages)) {
      if (typeof ms === 'number') this.stageDuration.observe({ cache, stage }, ms / 1000);
    }
  }

  recordEviction(cache: string, e: Pick<EvictEvent, 'size' | 'reason'>): void {
    this.evictions.inc({ cache, reason: e.reason });
    this.evictedBytes.inc({ cache, reason: e.reason }, e.size);
  }

  /** Stops reporting: every listener this instance added to a cache is removed. */
  unwatch(): void {
    for (const w of this.caches.values()) for (const off of w.unsubscribe) off();
    this.caches.clear();
    this.usages.clear();
    this.workers.length = 0;
  }

  private usage(cache: ImageCache): Promise<CacheUsage> {
    const now = Date.now();
    const known = this.usages.get(cache.name);
    if (known && now - known.at < USAGE_TTL_MS) return known.usage;
    const usage = cache.usage();
    this.usages.set(cache.name, { at: now, usage });
    usage.catch(() => this.usages.delete(cache.name));
    return usage;
  }
}

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  metrics: WorkerMetrics;
  workers: readonly Worker[];
  registry: CacheRegistry;
  redis: RedisConfig | string;
  port: number;
  /** Default 127.0.0.1; 0.0.0.0 in a container. */
  host?: string;
  logger?: Logger;
}

/**
 * Serves the worker's `/metrics`, `/healthz` (the process answers) and `/readyz` (Redis answers PING, every
 * BullMQ worker of the process runs, every master folder is writable) with node's http server.
 */
export async function serveMetrics(opts: MetricsServerOptions): Promise<MetricsServer> {
  // Made on the first /readyz: a server whose worker failed to start holds no connection.
  let redis: RedisClient | undefined;
  const ping = async () => {
    if (!redis) {
      redis = connectRedis(opts.redis, 'producer');
      await whenSettled(redis, 2000);
    }
    return redis.ping();
  };
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (url === '/healthz') return send(200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (url === '/readyz') {
      void readiness(ping, opts).then(
        (r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r.body)),
        (err: unknown) =>
          send(503, 'application/json', JSON.stringify({ status: 'unavailable', error: String(err) })),
      );
      return;
    }
    if (url === '/metrics') {
      void opts.metrics.registry.metrics().then(
        (text) => send(200, opts.metrics.registry.contentType, text),
        (err: unknown) => {
          opts.logger?.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'metrics collection failed',
          );
          send(500, 'text/plain', 'metrics collection failed\n');
        },
      );
      return;
    }
    send(404, 'text/plain', 'not found\n');
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Never what keeps the process alive (the BullMQ workers do, while they run).
  server.unref();
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  opts.logger?.info({ port: address.port, host: address.address }, 'worker metrics served');
  return {
    port: address.port,
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        redis?.disconnect();
      }),
  };
}

async function readiness(ping: () => Promise<unknown>, opts: MetricsServerOptions) {
  const checks: Record<string, string> = {};
  let ready = true;
  try {
    await withTimeout(ping(), 2000);
    checks.redis = 'ok';
  } catch (err) {
    ready = false;
    checks.redis = `unreachable: ${err instanceof Error ? err.message : String(err)}`;
  }
  const stopped = opts.workers.filter((w) => !w.isRunning()).map((w) => w.name);
  checks.workers =
    opts.workers.length > 0 && stopped.length === 0
      ? 'ok'
      : `not running: ${stopped.join(', ') || 'none started'}`;
  if (checks.workers !== 'ok') ready = false;
  for (const c of opts.registry.caches) {
    try {
      await fs.promises.access(c.masterDir, fs.constants.W_OK);
      checks[`cache:${c.name}`] = 'ok';
    } catch (err) {
      ready = false;
      checks[`cache:${c.name}`] = `not writable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
  }
  return { ready, body: { status: ready ? 'ok' : 'unavailable', checks } };
}
