import { randomUUID } from 'node:crypto';
import { Job, Queue, QueueEvents, type JobsOptions } from 'bullmq';
import type { RedisConfig } from '@imagecache/config';
// Types only: the engine's answers, as the workers send them back (the queue loads no engine).
import type { CacheListing, CleanUpResult, FetchResult, MasterEntry, SpaceReport } from '@imagecache/core';
import {
  fetchOptionsOf,
  type FetchRequest as ContractFetchRequest,
  type RequestAuth,
} from '@imagecache/contract';
import {
  deserializeError,
  ImageCacheError,
  NoWorker,
  OperationAborted,
  QueueTimeout,
  QueueUnavailable,
  redactHref,
  UsageError,
  type SerializedError,
} from '@imagecache/errors';
import { CancelRecord } from './cancel-record';
import { DEFAULT_JOB_OPTIONS, JOB_NAMES, type JobProgress, type JobSecret } from './catalog';
import {
  connectRedis,
  isReplicated,
  describeRedis,
  prefixOf,
  queueUnavailable,
  withTimeout,
  type RedisClient,
} from './connection';
import { JobRecipes, type JobRecipe } from './job-recipes';
import { jobIdFor, keys, queueNames, queueOfJobId } from './names';
import { ResultStore } from './result-store';
import { SecretStore } from './secrets';
import { WorkerRegistry } from './worker-registry';

/** Default `unavailableAfterMs`: how long a waiting call bears with a Redis that is gone. */
export const DEFAULT_UNAVAILABLE_AFTER_MS = 15_000;

/** How long close() waits for BullMQ's own closes before it drops the connections. */
const CLOSE_WAIT_MS = 1000;

/**
 * How often a waiting call adds its job again when it finds it gone from Redis (lost with a master in a failover),
 * at most; past that it gets QUEUE_UNAVAILABLE. Each loss takes a failover: three in one call is already unheard of.
 */
export const MAX_READDS = 3;

/** How long a call's step that Redis refused (a failover under way) is tried again, at most. */
const FAILOVER_RETRY_MS = 10_000;

/** How long a "served" answer of the worker registry is reused by enqueues, ms (a miss is always read again). */
const SERVED_CACHE_MS = 1000;

export interface ImageCacheClientOptions {
  /** A Redis URL, or the configuration's `redis` section (single, Sentinel or Cluster). */
  redis: RedisConfig | string;
  /** Default time a call waits for its job, ms; 0 waits as long as it takes. Default 0. */
  timeoutMs?: number;
  /**
   * How often a waiting call reads its job's state, in case a completion event was lost, and whether a live
   * worker still serves its queue. Default 5000.
   */
  pollIntervalMs?: number;
  /**
   * A waiting call fails with `QUEUE_UNAVAILABLE` once Redis has been unreachable for this long, or its job has
   * been gone from Redis (lost with a master, or Redis restarted without its data) this long without a result kept
   * for it and it could not add it again (a job it did not add, or lost MAX_READDS times already). So a caller
   * learns it at most this plus one poll interval after Redis went away. Default 15000.
   */
  unavailableAfterMs?: number;
  /**
   * Refuse (`NO_WORKER`) to enqueue for a host or cache no live worker serves, and fail a waiting call whose
   * queue has had no live worker on two polls in a row. Default true.
   */
  requireLiveWorker?: boolean;
}

interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (progress: JobProgress) => void;
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Overrides the catalog's job options (attempts, backoff…). */
  jobOptions?: JobsOptions;
}

/** A fetch request (@imagecache/contract) for a host's cache. */
export interface FetchRequest extends CallOptions, ContractFetchRequest {
  host: string;
  cache: string;
}

export interface CleanUpRequest extends CallOptions {
  host: string;
  cache: string;
  amount?: number;
}

export interface CleanUpCachesRequest extends CallOptions {
  host: string;
  directory: string;
  images: { href: string; auth?: RequestAuth }[];
}

/** What a clean job answers: the engine's result, the cache's name, when it started and finished (ms). */
export interface CleanJobResult extends CleanUpResult {
  cache: string;
  startedAt: number;
  finishedAt: number;
}

/** A cache's listing as a list job answers it: `ImageCache.listing()` in JSON (dates as ISO strings). */
export interface ListedCache extends Omit<CacheListing, 'masters'> {
  masters: (Omit<MasterEntry, 'lastUsed'> & { lastUsed: string })[];
}

/** A job as a caller may see it: no credentials. */
export interface JobView {
  id: string;
  queue: string;
  name: string;
  state: string;
  data: Record<string, unknown>;
  progress: unknown;
  attemptsMade: number;
  result?: unknown;
  error?: SerializedError;
  createdAt?: number;
  /** When the attempt that finished started (BullMQ's processedOn). */
  startedAt?: number;
  finishedAt?: number;
}

interface Waiter {
  queue: string;
  /** False while the job is being added: the poller must not take it for gone meanwhile. */
  added: boolean;
  /** Polls in a row that found no live worker serving the queue. */
  unserved: number;
  /** Since when its job has been gone from Redis with no result kept (ms since the epoch). */
  goneSince?: number;
  /** How to add its job again should Redis lose it: only for a job this client added. */
  recipe?: JobRecipe;
  /** How often it was added again (at most MAX_READDS), and the re-add under way. */
  reAdds: number;
  reAdding?: Promise<void>;
  /** A `removed` event was seen for its job: removed by someone (the API, the board), not lost. */
  removed?: boolean;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  onProgress?: (p: JobProgress) => void;
}

/**
 * The producer side of the distributed mode: enqueues fetch and clean-up jobs for a host's workers and
 * settles with the engine's result, or rejects with the engine's typed error (same class and code as in
 * embedded mode). Completion events are best effort, so each waiting call also reads its job's state
 * every `pollIntervalMs`: a lost event never hangs a caller.
 */
export class ImageCacheClient {
  private readonly producer: RedisClient;
  private readonly prefix: string;
  private readonly secrets: SecretStore;
  private readonly workers: WorkerRegistry;
  private served?: { at: number; queues: Set<string> };
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, Promise<QueueEvents>>();
  private readonly waiters = new Map<string, Waiter>();
  /** BullMQ never closes a connection it was given: these are ours to close. */
  private readonly listeners: RedisClient[] = [];
  private readonly poller: NodeJS.Timeout;
  private closed = false;
  private connecting?: Promise<void>;
  /** Since when polls have found Redis unreachable (ms since the epoch); undefined while it answers. */
  private redisDownSince?: number;
  private readonly results: ResultStore;
  private readonly early = new Map<string, { value?: unknown; error?: unknown }>();
  private readonly cancels: CancelRecord;
  private readonly recipes = new JobRecipes();

  constructor(private readonly options: ImageCacheClientOptions) {
    this.producer = connectRedis(options.redis, 'producer');
    this.prefix = prefixOf(options.redis);
    this.secrets = new SecretStore(this.producer, this.prefix);
    this.workers = new WorkerRegistry(this.producer, this.prefix);
    this.results = new ResultStore(this.producer, this.prefix);
    this.cancels = new CancelRecord(this.producer, this.prefix, isReplicated(options.redis));
    this.poller = setInterval(() => void this.poll(), options.pollIntervalMs ?? 5000);
    this.poller.unref();
  }

  /** Enqueues a fetch and waits for it. */
  async fetchImage(req: FetchRequest): Promise<FetchResult> {
    const { queue, jobId } = await this.addFetch(req, true);
    return (await this.wait(queue, jobId, req)) as FetchResult;
  }

  /** Enqueues a fetch without waiting; returns the job id (GET it, or `waitFor` it, later). */
  enqueueFetch(req: FetchRequest): Promise<{ queue: string; jobId: string }> {
    return this.addFetch(req, false);
  }

  private async addFetch(req: FetchRequest, willWait: boolean): Promise<{ queue: string; jobId: string }> {
    const queue = queueNames.fetch(req.host, req.cache);
    await this.requireWorker(queue, req);
    const jobId = newJobId(queue);
    // A checksum may be the URL of a checksum file, with credentials of its own: it travels like the href.
    const secret = await this.stash({
      kind: JOB_NAMES.fetch,
      owner: jobId,
      href: req.href,
      expectedChecksum: req.expectedChecksum,
      auth: req.auth,
    });
    const ref = secret?.ref;
    const data = {
      href: redactHref(req.href),
      dest: req.dest,
      ...fetchOptionsOf(req),
      // After the options: the checksum's URL may hold credentials, the job shows it redacted.
      expectedChecksum: req.expectedChecksum === undefined ? undefined : redactHref(req.expectedChecksum),
      credentialsRef: ref,
    };
    await this.add(
      queue,
      jobId,
      JOB_NAMES.fetch,
      data,
      { ...DEFAULT_JOB_OPTIONS.fetch, ...req.jobOptions },
      req,
      willWait,
      secret,
    );
    return { queue, jobId };
  }

  async cleanUp(req: CleanUpRequest): Promise<CleanJobResult> {
    const queue = queueNames.clean(req.host, req.cache);
    await this.requireWorker(queue, req);
    const opts = { ...DEFAULT_JOB_OPTIONS.clean, ...req.jobOptions };
    const jobId = await this.add(queue, newJobId(queue), JOB_NAMES.clean, { amount: req.amount }, opts, req);
    return (await this.wait(queue, jobId, req)) as CleanJobResult;
  }

  /** The masters of a host's cache, as `ImageCache.listing()` gives them (dates as ISO strings). */
  async list(req: CallOptions & { host: string; cache: string }): Promise<ListedCache> {
    const queue = queueNames.clean(req.host, req.cache);
    await this.requireWorker(queue, req);
    const opts = { ...DEFAULT_JOB_OPTIONS.list, ...req.jobOptions };
    const jobId = await this.add(queue, newJobId(queue), JOB_NAMES.list, {}, opts, req);
    return (await this.wait(queue, jobId, req)) as ListedCache;
  }

  async cleanUpCaches(req: CleanUpCachesRequest): Promise<SpaceReport> {
    const queue = queueNames.cleanCaches(req.host);
    await this.requireWorker(queue, req);
    const jobId = newJobId(queue);
    const secret = await this.stash({
      kind: JOB_NAMES.cleanCaches,
      owner: jobId,
      images: req.images.map((i) => ({ href: i.href, auth: i.auth })),
    });
    const opts = { ...DEFAULT_JOB_OPTIONS.cleanCaches, ...req.jobOptions };
    await this.add(
      queue,
      jobId,
      JOB_NAMES.cleanCaches,
      {
        directory: req.directory,
        hrefs: req.images.map((i) => redactHref(i.href)),
        credentialsRef: secret?.ref,
      },
      opts,
      req,
      true,
      secret,
    );
    return (await this.wait(queue, jobId, req)) as SpaceReport;
  }

  /** Waits for a job enqueued earlier (by this or another client). */
  async waitFor(jobId: string, opts: CallOptions = {}): Promise<unknown> {
    const queue = queueOfJobId(jobId);
    if (!queue) throw new UsageError(`not a job id of imagecache: ${jobId}`);
    await this.listen(queue);
    return this.wait(queue, jobId, opts, true);
  }

  /** The job as callers may see it, or undefined when there is none (unknown, or removed by age). */
  async getJob(jobId: string): Promise<JobView | undefined> {
    const queue = queueOfJobId(jobId);
    if (!queue) return undefined;
    const q = this.queue(queue);
    // The state first, then the job: a job that finishes in between shows its earlier state with its final data,
    // never `completed` without its result.
    const [state, job] = await q
      .getJobState(jobId)
      .then(async (st) => [st, await q.getJob(jobId)] as const)
      .catch((err) => {
        throw queueUnavailable(err, describeRedis(this.options.redis));
      });
    if (!job || state === 'unknown') return undefined;
    const { credentialsRef: _ref, error, ...data } = job.data as Record<string, unknown>;
    return {
      id: jobId,
      queue,
      name: job.name,
      state,
      data,
      progress: job.progress,
      attemptsMade: job.attemptsMade,
      ...(state === 'completed' ? { result: job.returnvalue } : {}),
      ...(state === 'failed' && error ? { error: error as SerializedError } : {}),
      createdAt: job.timestamp,
      startedAt: job.processedOn,
      finishedAt: job.finishedOn,
    };
  }

  /**
   * Cancels a job: removed if still waiting, else its worker aborts it (download stopped, qemu-img killed). The
   * cancel is recorded first (cancel-record.ts): a caller that finds the job gone never adds it again.
   */
  async cancel(jobId: string, reason = 'cancelled by the caller'): Promise<void> {
    const queue = queueOfJobId(jobId);
    if (!queue) return;
    await this.cancels.record(jobId, reason);
    const job = await this.queue(queue).getJob(jobId);
    if (job && ['waiting', 'delayed', 'prioritized'].includes(await job.getState())) {
      // Taken by a worker meanwhile, the remove fails: the message below reaches it.
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      const ref = (job.data as { credentialsRef?: string }).credentialsRef;
      if (removed && ref) await this.secrets.release(ref, jobId).catch(() => undefined);
    }
    await this.producer.publish(keys.cancelChannel(this.prefix), JSON.stringify({ jobId, reason }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poller);
    for (const w of this.waiters.values()) w.reject(new OperationAborted('the client was closed'));
    this.waiters.clear();
    this.recipes.clear();
    // Bounded: with Redis gone, BullMQ's closes wait for it; the connections are dropped below anyway.
    await withTimeout(
      Promise.all([
        ...[...this.events.values()].map(async (e) => (await e.catch(() => undefined))?.close()),
        ...[...this.queues.values()].map((q) => q.close()),
      ]),
      CLOSE_WAIT_MS,
    ).catch(async () => {
      // BullMQ's own connections (duplicates it made) would otherwise keep reconnecting to a Redis that is gone.
      for (const e of this.events.values())
        (await e.catch(() => undefined))?.disconnect().catch(() => undefined);
      for (const q of this.queues.values()) q.disconnect().catch(() => undefined);
    });
    for (const c of this.listeners) c.disconnect();
    this.producer.disconnect();
  }

  /** Stashes a job's credentials; returns their reference and the secret (kept to add the job again). */
  private async stash(secret: JobSecret): Promise<{ ref: string; value: JobSecret } | undefined> {
    await this.ready();
    // Tried again with a fresh reference: one whose answer was lost expires unused (SECRET_TTL_SECONDS).
    const ref = await this.throughFailover(() => this.secrets.stash(secret)).catch((err) => {
      throw queueUnavailable(err, describeRedis(this.options.redis));
    });
    return ref === undefined ? undefined : { ref, value: secret };
  }

  private async add(
    queueName: string,
    jobId: string,
    name: string,
    data: object,
    opts: JobsOptions,
    call: CallOptions,
    willWait = true,
    secret?: { ref: string; value: JobSecret },
  ): Promise<string> {
    if (call.signal?.aborted) throw new OperationAborted('cancelled before it was queued');
    await this.ready();
    this.recipes.keep(jobId, { queue: queueName, name, data, opts, secret }, willWait);
    if (willWait) {
      await this.listen(queueName); // before the add: the completion can't be missed
      // Until wait() takes over, an outcome that arrives is kept for it.
      this.waiters.set(jobId, {
        queue: queueName,
        added: false,
        unserved: 0,
        reAdds: 0,
        resolve: (value) => this.early.set(jobId, { value }),
        reject: (error) => this.early.set(jobId, { error }),
      });
    }
    try {
      // Adding the same id again is a no-op in BullMQ: an add whose answer was lost is safe to repeat.
      await this.throughFailover(() => this.queue(queueName).add(name, data, { ...opts, jobId }));
    } catch (err) {
      this.waiters.delete(jobId);
      this.recipes.drop(jobId);
      throw queueUnavailable(err, describeRedis(this.options.redis));
    }
    return jobId;
  }

  /**
   * Runs `step` (one safe to repeat), trying again while Redis refuses it for up to FAILOVER_RETRY_MS as long as
   * the connection comes back: a failover under way (the old master refusing writes, a Cluster's slot moving and
   * its nodes' connections closing: "Too many Cluster redirections") is no reason to fail a caller.
   */
  private async throughFailover<T>(step: () => Promise<T>): Promise<T> {
    const since = Date.now();
    for (;;) {
      try {
        return await step();
      } catch (err) {
        if (this.closed || Date.now() - since >= FAILOVER_RETRY_MS) throw err;
        await new Promise((r) => setTimeout(r, 250));
        await this.ready().catch(() => {
          throw err;
        });
      }
    }
  }

  /**
   * Settles with the job's outcome. A job added by this client is settled by its completion event (the listener
   * was ready before the add) or by the poller; one added elsewhere (`checkNow`) may be over already.
   */
  private wait(queueName: string, jobId: string, call: CallOptions, checkNow = false): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timeoutMs = call.timeoutMs ?? this.options.timeoutMs ?? 0;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              done();
              reject(
                new QueueTimeout(`no answer for job ${jobId} within ${timeoutMs} ms; it may still finish`, {
                  jobId,
                }),
              );
            }, timeoutMs)
          : undefined;
      const onAbort = () => {
        done();
        void this.cancel(jobId).catch(() => undefined);
        reject(new OperationAborted(`job ${jobId} cancelled`, { jobId }));
      };
      const done = () => {
        if (timer) clearTimeout(timer);
        call.signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(jobId);
        this.recipes.drop(jobId);
      };
      this.waiters.set(jobId, {
        queue: queueName,
        added: true,
        unserved: 0,
        reAdds: 0,
        recipe: this.recipes.claim(jobId),
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        onProgress: call.onProgress,
      });
      call.signal?.addEventListener('abort', onAbort, { once: true });
      const early = this.early.get(jobId);
      if (early) {
        this.early.delete(jobId);
        if ('error' in early) this.waiters.get(jobId)?.reject(early.error);
        else this.waiters.get(jobId)?.resolve(early.value);
      } else if (checkNow) void this.settleFromState(jobId);
    });
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.producer, prefix: this.prefix, skipWaitingForReady: true });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  /** One QueueEvents per queue, shared by every call waiting on it. */
  private listen(queueName: string): Promise<QueueEvents> {
    let ev = this.events.get(queueName);
    if (!ev) {
      ev = (async () => {
        const connection = connectRedis(this.options.redis, 'worker');
        this.listeners.push(connection);
        const events = new QueueEvents(queueName, {
          connection,
          prefix: this.prefix,
        });
        events.on('error', () => undefined);
        events.on('completed', ({ jobId, returnvalue }) => {
          this.waiters.get(jobId)?.resolve(parse(returnvalue));
        });
        events.on('failed', ({ jobId }) => void this.settleFromState(jobId));
        events.on('removed', ({ jobId }) => {
          const w = this.waiters.get(jobId);
          if (!w) return;
          w.removed = true;
          void this.settleFromState(jobId);
        });
        events.on('progress', ({ jobId, data }) => {
          const p = data as unknown as JobProgress;
          if (p && typeof p === 'object') this.waiters.get(jobId)?.onProgress?.(p);
        });
        await events.waitUntilReady();
        return events;
      })();
      ev.catch(() => this.events.delete(queueName));
      this.events.set(queueName, ev);
    }
    return ev;
  }

  /** Settles a waiting call from its job's stored state (after a failed event, or by the poller). */
  private async settleFromState(jobId: string): Promise<void> {
    const w = this.waiters.get(jobId);
    if (!w) return;
    try {
      // The state first: it is final once completed or failed, so the job read after it is complete too
      // (read the other way round, a job finishing in between would show no return value).
      const queue = this.queue(w.queue);
      const state = await queue.getJobState(jobId);
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
      if (state === 'unknown' && !w.added) return; // still being added
      const job = state === 'unknown' ? undefined : await Job.fromId(queue, jobId);
      if (!job) {
        // A result produced while Redis lost the job (restarted without its data) was kept beside it.
        const kept = await this.results.read(jobId);
        if (kept !== undefined) return w.resolve(kept);
        if (w.removed || (await this.cancels.has(jobId))) return w.reject(cancelled(jobId));
        if (w.recipe && w.reAdds < MAX_READDS) {
          w.reAdding ??= this.addAgain(jobId, w).finally(() => (w.reAdding = undefined));
          return await w.reAdding;
        }
        w.goneSince ??= Date.now();
        if (Date.now() - w.goneSince < this.unavailableAfterMs()) return; // its worker may still finish it
        w.reject(
          new QueueUnavailable(
            `job ${jobId} is gone from Redis (lost with its data${w.reAdds ? `, even after ${w.reAdds} re-adds` : ''}) ` +
              'and no result was kept for it: its outcome is unknown; submit the request again',
            { jobId },
          ),
        );
        return;
      }
      w.goneSince = undefined;
      if (state === 'completed') return w.resolve(job.returnvalue);
      // A run whose completion was lost with a master, run again and failed (its credentials released by the first
      // run): the result that first run kept stands.
      const kept = await this.results.read(jobId);
      if (kept !== undefined) w.resolve(kept);
      else w.reject(errorOf(job));
    } catch {
      // Redis unreachable right now: the poller tries again.
    }
  }

  /**
   * Adds a job gone from Redis again, as it was added (same id, data and options), its credentials stashed again
   * under the same reference if they were lost too. Safe whatever happened: an id still there makes the add a
   * no-op, and a run of a fetch already done is a hit. A cancel made meanwhile (between the check and the add)
   * removes it again.
   */
  private async addAgain(jobId: string, w: Waiter): Promise<void> {
    const r = w.recipe!;
    w.reAdds++;
    if (r.secret) await this.secrets.restore(r.secret.ref, r.secret.value);
    const job = await this.queue(r.queue).add(r.name, r.data, { ...r.opts, jobId });
    if (await this.cancels.has(jobId)) {
      await job.remove().catch(() => undefined);
      w.reject(cancelled(jobId));
    }
  }

  private poll(): void {
    void this.checkRedis();
    for (const id of this.waiters.keys()) void this.settleFromState(id);
    if (this.options.requireLiveWorker ?? true) void this.checkWorkers().catch(() => undefined);
  }

  private unavailableAfterMs(): number {
    return this.options.unavailableAfterMs ?? DEFAULT_UNAVAILABLE_AFTER_MS;
  }

  /**
   * Fails every waiting call with QUEUE_UNAVAILABLE once Redis has been unreachable for `unavailableAfterMs`: a
   * caller is never left waiting on a Redis that is gone (its job may still finish; the message says so).
   */
  private async checkRedis(): Promise<void> {
    if (this.waiters.size === 0) {
      this.redisDownSince = undefined;
      return;
    }
    const up =
      this.producer.status === 'ready' &&
      (await withTimeout(this.producer.ping(), 2000).then(
        () => true,
        () => false,
      ));
    if (up) {
      this.redisDownSince = undefined;
      return;
    }
    this.redisDownSince ??= Date.now();
    const down = Date.now() - this.redisDownSince;
    if (down < this.unavailableAfterMs()) return;
    const where = describeRedis(this.options.redis);
    for (const [jobId, w] of [...this.waiters]) {
      if (!w.added) continue;
      w.reject(
        new QueueUnavailable(
          `Redis at ${where} has been unreachable for ${Math.round(down / 1000)} s while job ${jobId} ran: ` +
            'its outcome is unknown (it may still finish; read it with the job id once Redis is back)',
          { jobId },
        ),
      );
    }
  }

  /**
   * Fails the calls whose queue has had no live worker on two polls in a row (its last worker died, or stopped,
   * and none came back): a caller learns it within the heartbeat TTL plus two poll intervals, instead of waiting
   * for a worker that may never come. A job that never started is removed (it can't run behind the caller's
   * back); one that had started is left to BullMQ's stalled-job check, for a worker that comes back.
   */
  private async checkWorkers(): Promise<void> {
    if (this.waiters.size === 0) return;
    const served = await this.servedQueues(true);
    for (const [jobId, w] of [...this.waiters]) {
      if (!w.added) continue;
      if (served.has(w.queue)) {
        w.unserved = 0;
        continue;
      }
      if (++w.unserved < 2) continue;
      await this.settleFromState(jobId); // finished meanwhile (its event lost): that answer wins
      if (this.waiters.get(jobId) !== w) continue;
      void this.cancel(jobId, 'no live worker serves its queue').catch(() => undefined);
      w.reject(
        new NoWorker(
          `no live worker serves ${w.queue} any more (none has sent a heartbeat within its TTL); job ${jobId} ` +
            'was given up: fetch again once a worker runs',
          { jobId, queue: w.queue },
        ),
      );
    }
  }

  /** Refuses, before anything is written to Redis, a job for a queue no live worker serves. */
  private async requireWorker(queue: string, req: { host: string; cache?: string }): Promise<void> {
    if (!(this.options.requireLiveWorker ?? true)) return;
    await this.ready();
    let served = await this.throughFailover(() => this.servedQueues(false));
    if (!served.has(queue)) served = await this.throughFailover(() => this.servedQueues(true));
    if (served.has(queue)) return;
    const what = req.cache === undefined ? `host ${req.host}` : `cache ${req.cache} of host ${req.host}`;
    throw new NoWorker(
      `no live worker serves ${what}: nothing was queued (start \`imagecache worker\` on that host, ` +
        'or check the host and cache names)',
      { host: req.host, ...(req.cache === undefined ? {} : { cache: req.cache }), queue },
    );
  }

  /** The queues live workers serve; a recent answer is reused unless `fresh`. */
  private async servedQueues(fresh: boolean): Promise<Set<string>> {
    if (!fresh && this.served && Date.now() - this.served.at < SERVED_CACHE_MS) return this.served.queues;
    const queues = await this.workers.servedQueues().catch((err) => {
      throw queueUnavailable(err, describeRedis(this.options.redis));
    });
    this.served = { at: Date.now(), queues };
    return queues;
  }

  /** Resolves once the producer connection is up (shared by concurrent calls), or fails within 5 s. */
  private ready(): Promise<void> {
    const r = this.producer;
    if (r.status === 'ready') return Promise.resolve();
    this.connecting ??= new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => fail(new Error(`not connected within 5 s (${r.status})`)), 5000);
      const ok = () => {
        clearTimeout(t);
        r.off('end', fail);
        resolve();
      };
      const fail = (err?: unknown) => {
        clearTimeout(t);
        r.off('ready', ok);
        r.off('end', fail);
        reject(queueUnavailable(err ?? new Error('connection ended'), describeRedis(this.options.redis)));
      };
      r.once('ready', ok);
      r.once('end', fail);
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }
}

/** A job's id is chosen before it is added: its credentials are stored first, bound to it. */
function newJobId(queueName: string): string {
  return jobIdFor(queueName, randomUUID());
}

/** A waiting call's answer when its job was cancelled (by anyone: this client, the API, the board). */
function cancelled(jobId: string): OperationAborted {
  return new OperationAborted(`job ${jobId} was cancelled`, { jobId });
}

function parse(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** The typed error the worker stored with the job, else a generic one from BullMQ's reason. */
function errorOf(job: Job): ImageCacheError {
  const stored = (job.data as { error?: SerializedError }).error;
  if (stored) return deserializeError(stored);
  return new ImageCacheError(job.failedReason || 'the job failed', { jobId: job.id });
}
