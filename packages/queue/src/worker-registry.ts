import type { RedisClient } from './connection';
import { keys } from './names';

/**
 * How long an announcement lives without a heartbeat, ms. A worker that dies (kill -9, crash, power) stops
 * serving in the eyes of callers, the API's /readyz and its metrics at most this long after its last beat.
 */
export const DEFAULT_HEARTBEAT_TTL_MS = 15_000;
/**
 * Beats per TTL: a worker refreshes its announcement every TTL / 5 (3 s by default), so a beat held up by a busy
 * event loop or a slow Redis for up to 4/5 of the TTL (12 s) still lands in time.
 */
export const BEATS_PER_TTL = 5;

/** What a worker process tells the others it serves. */
export interface WorkerAnnouncement {
  /** Unique per process (a restarted worker is a new one). */
  id: string;
  host: string;
  caches: string[];
  /** The queue names it takes jobs from (fetch and clean per cache, clean-caches of the host). */
  queues: string[];
  pid: number;
  /** The machine it runs on (os.hostname()), for operators; `host` is the name its queues carry. */
  hostname: string;
  startedAt: number;
  ttlMs: number;
}

/**
 * The live workers of a deployment, as announced in Redis: a key per worker process with a TTL (PX), refreshed by
 * its heartbeat, and a set indexing them (pruned of expired ones by readers). Every key carries the deployment's
 * prefix, so on a Cluster all of them live in one slot with the queues. One owner for writers (the worker) and
 * readers (client, API, CLI).
 */
export class WorkerRegistry {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /** Writes (or refreshes) an announcement for `ttlMs`. */
  async announce(a: WorkerAnnouncement): Promise<void> {
    await this.redis
      .multi()
      .set(keys.worker(this.prefix, a.id), JSON.stringify(a), 'PX', a.ttlMs)
      .sadd(keys.workers(this.prefix), a.id)
      .exec();
  }

  /** Removes an announcement at once (a worker that stopped serves nothing). */
  async withdraw(id: string): Promise<void> {
    await this.redis.multi().del(keys.worker(this.prefix, id)).srem(keys.workers(this.prefix), id).exec();
  }

  /** Every worker whose announcement has not expired. */
  async live(): Promise<WorkerAnnouncement[]> {
    const ids = await this.redis.smembers(keys.workers(this.prefix));
    if (ids.length === 0) return [];
    const raw = await this.redis.mget(...ids.map((id) => keys.worker(this.prefix, id)));
    const gone = ids.filter((_, i) => raw[i] === null);
    if (gone.length) await this.redis.srem(keys.workers(this.prefix), ...gone).catch(() => undefined);
    return raw.flatMap((r) => (r === null ? [] : [JSON.parse(r) as WorkerAnnouncement]));
  }

  /** Names of the queues some live worker takes jobs from. */
  async servedQueues(): Promise<Set<string>> {
    return new Set((await this.live()).flatMap((a) => a.queues));
  }
}

/**
 * Keeps one announcement alive: written at start, refreshed every TTL / BEATS_PER_TTL on a timer of its own (the
 * jobs' work is asynchronous, so the event loop runs it on time), withdrawn at stop. A failed beat (Redis away) is
 * tried again at the next one.
 */
export class WorkerHeartbeat {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly registry: WorkerRegistry,
    private readonly announcement: WorkerAnnouncement,
  ) {}

  async start(): Promise<void> {
    await this.registry.announce(this.announcement);
    this.timer = setInterval(
      () => this.beat(),
      Math.max(100, Math.floor(this.announcement.ttlMs / BEATS_PER_TTL)),
    );
    this.timer.unref();
  }

  /** One beat now (e.g. as soon as Redis is back after an outage longer than the TTL). */
  beat(): void {
    if (this.timer) void this.registry.announce(this.announcement).catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.registry.withdraw(this.announcement.id).catch(() => undefined);
  }
}
