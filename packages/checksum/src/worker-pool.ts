import { availableParallelism } from 'node:os';
import { isSharedArrayBuffer } from 'node:util/types';
import type * as WorkerThreads from 'node:worker_threads';

/*
 * A small pool of hashing threads shared by every StreamHasher of the process.
 *
 * The worker is created from an inline script (`eval: true`) so the package works the same from its compiled dist
 * and from TypeScript sources under jest. Each hash state lives in one worker under an id; messages of one worker
 * are handled in order, so the chunks of a hasher are hashed in the order they were queued. Every request that
 * wants an answer (update, digest) gets exactly one reply, in order per hash.
 *
 * Workers are unref'd while idle (they never keep a process alive) and ref'd while a reply is awaited (so a
 * process awaiting a digest does not exit under it). A worker that dies fails every hash it carries; it is
 * replaced on the next demand.
 */

const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const states = new Map();
const errorOf = (e) => (e && e.message ? String(e.message) : String(e));
parentPort.on('message', (m) => {
  switch (m.op) {
    case 'init':
      try { states.set(m.id, createHash(m.algo)); } catch (e) { states.set(m.id, new Error(errorOf(e))); }
      return;
    case 'update': {
      const h = states.get(m.id);
      if (h === undefined) return parentPort.postMessage({ id: m.id, ok: false, error: 'unknown hash ' + m.id });
      if (h instanceof Error) return parentPort.postMessage({ id: m.id, ok: false, error: h.message });
      try {
        h.update(new Uint8Array(m.buf, m.off, m.len));
        parentPort.postMessage({ id: m.id, ok: true });
      } catch (e) {
        states.set(m.id, new Error(errorOf(e)));
        parentPort.postMessage({ id: m.id, ok: false, error: errorOf(e) });
      }
      return;
    }
    case 'digest': {
      const h = states.get(m.id);
      states.delete(m.id);
      if (h === undefined) return parentPort.postMessage({ id: m.id, ok: false, error: 'unknown hash ' + m.id });
      if (h instanceof Error) return parentPort.postMessage({ id: m.id, ok: false, error: h.message });
      try { parentPort.postMessage({ id: m.id, ok: true, hex: h.digest('hex') }); }
      catch (e) { parentPort.postMessage({ id: m.id, ok: false, error: errorOf(e) }); }
      return;
    }
    case 'destroy':
      states.delete(m.id);
      return;
    case 'exit':
      process.exit(m.code);
  }
});
`;

interface Reply {
  id: number;
  ok: boolean;
  hex?: string;
  error?: string;
}

interface Waiter {
  resolve(hex: string | undefined): void;
  reject(err: Error): void;
}

/** The error a hash operation fails with when its worker reports an error or dies. */
export class HashWorkerError extends Error {
  override name = 'HashWorkerError';
}

let nextId = 1;

/** One hash state inside one worker: the low-level channel StreamHasher is built on. */
export class HashChannel {
  readonly id = nextId++;
  private readonly waiters: Waiter[] = [];
  private failure: Error | undefined;
  private closed = false;

  constructor(
    private readonly owner: PoolWorker,
    algo: string,
  ) {
    owner.attach(this);
    owner.send({ op: 'init', id: this.id, algo }, false);
  }

  /** The error that broke this channel (worker death), if any. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Queues bytes; resolves once the worker has hashed them. The view may be on a SharedArrayBuffer (shared) or
   * on a plain ArrayBuffer that the caller hands over (transferred). */
  update(buf: ArrayBufferLike, off: number, len: number): Promise<void> {
    const transfer = isSharedArrayBuffer(buf) ? [] : [buf as ArrayBuffer];
    return this.request({ op: 'update', id: this.id, buf, off, len }, transfer).then(() => undefined);
  }

  /** Resolves with the hex digest; the channel is closed afterwards. */
  digest(): Promise<string> {
    const p = this.request({ op: 'digest', id: this.id }, []);
    this.close(false);
    return p.then((hex) => hex ?? '');
  }

  /** Drops the hash state. Requests already queued still settle. */
  destroy(): void {
    this.close(true);
  }

  private close(sendDestroy: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (sendDestroy && this.failure === undefined) this.owner.send({ op: 'destroy', id: this.id }, false);
    this.owner.release(this);
    this.detachIfDone();
  }

  private request(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<string | undefined> {
    const broken = this.failure ?? this.owner.dead;
    if (broken) return Promise.reject(broken);
    return new Promise<string | undefined>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.waiters.push(waiter);
      try {
        this.owner.send(msg, true, transfer);
      } catch (err) {
        // not posted (e.g. an untransferable buffer): no reply will come
        this.waiters.splice(this.waiters.lastIndexOf(waiter), 1);
        reject(err);
      }
    });
  }

  /** @internal a reply from the worker */
  settle(reply: Reply): void {
    const w = this.waiters.shift();
    if (w) {
      if (reply.ok) w.resolve(reply.hex);
      else w.reject(new HashWorkerError(reply.error ?? 'hash failed'));
    }
    this.detachIfDone();
  }

  /** @internal the worker died */
  fail(err: Error): void {
    if (this.failure === undefined) this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.detachIfDone();
  }

  /** @internal */
  get pending(): number {
    return this.waiters.length;
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  private detachIfDone(): void {
    if ((this.closed || this.failure) && this.waiters.length === 0) this.owner.detach(this);
  }
}

/** @internal one worker thread of the pool */
export class PoolWorker {
  readonly worker: WorkerThreads.Worker;
  /** Channels that may still receive replies. */
  private readonly channels = new Map<number, HashChannel>();
  /** Open hashers pinned here (for choosing the least loaded worker). */
  load = 0;
  private awaiting = 0;
  private refd = false;
  dead: Error | undefined;

  constructor(private readonly onDeath: (w: PoolWorker) => void) {
    // Loaded by the first hashing thread: a hit, or a small image hashed on the main thread, never needs it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Worker } = require('node:worker_threads') as typeof WorkerThreads;
    this.worker = new Worker(WORKER_SOURCE, { eval: true, name: 'imagecache-hash' });
    this.worker.on('message', (m: Reply) => this.onReply(m));
    this.worker.on('error', (e: Error) => this.die(new HashWorkerError(`hash worker failed: ${e.message}`)));
    this.worker.on('exit', (code: number) =>
      this.die(new HashWorkerError(`hash worker exited (code ${code})`)),
    );
    // After the listeners: adding a 'message' listener refs the worker again.
    this.worker.unref();
  }

  attach(ch: HashChannel): void {
    this.channels.set(ch.id, ch);
    this.load++;
    if (this.dead) ch.fail(this.dead);
  }

  release(_ch: HashChannel): void {
    this.load = Math.max(0, this.load - 1);
  }

  detach(ch: HashChannel): void {
    this.channels.delete(ch.id);
  }

  /** Posts a request; one that wants a reply keeps the process alive until the reply comes. */
  send(msg: Record<string, unknown>, wantsReply: boolean, transfer: ArrayBuffer[] = []): void {
    if (this.dead) return;
    if (wantsReply) this.expectReply();
    try {
      this.worker.postMessage(msg, transfer);
    } catch (err) {
      if (wantsReply) this.gotReply();
      throw err;
    }
  }

  private expectReply(): void {
    if (++this.awaiting === 1 && !this.refd) {
      this.refd = true;
      this.worker.ref();
    }
  }

  private gotReply(): void {
    if (--this.awaiting <= 0) {
      this.awaiting = 0;
      if (this.refd) {
        this.refd = false;
        this.worker.unref();
      }
    }
  }

  private onReply(m: Reply): void {
    this.gotReply();
    this.channels.get(m.id)?.settle(m);
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.awaiting = 0;
    this.refd = false;
    this.worker.unref();
    this.onDeath(this);
    for (const ch of [...this.channels.values()]) ch.fail(err);
    this.channels.clear();
  }
}

const workers: PoolWorker[] = [];
let maxWorkers = Math.max(1, Math.min(2, availableParallelism()));

function removeWorker(w: PoolWorker): void {
  const i = workers.indexOf(w);
  if (i >= 0) workers.splice(i, 1);
}

/** The worker a new hash is pinned to: an idle one, else a new one while under the bound, else the least loaded. */
export function acquireWorker(): PoolWorker {
  const idle = workers.find((w) => w.load === 0);
  if (idle) return idle;
  if (workers.length < maxWorkers) {
    const w = new PoolWorker(removeWorker);
    workers.push(w);
    return w;
  }
  return workers.reduce((a, b) => (b.load < a.load ? b : a));
}

export interface HashPoolOptions {
  /** Hashing threads at most (default min(2, CPUs)). */
  maxWorkers?: number;
}

/** Sets the pool's bound (existing workers beyond it stay until they die or closeHashWorkers()). */
export function configureHashPool(opts: HashPoolOptions): void {
  if (opts.maxWorkers !== undefined) {
    if (!Number.isInteger(opts.maxWorkers) || opts.maxWorkers < 1)
      throw new RangeError('maxWorkers must be ≥ 1');
    maxWorkers = opts.maxWorkers;
  }
}

/** Starts the pool's threads now (about 25 ms each) so the first download does not pay for it. */
export async function prewarmHashWorkers(): Promise<void> {
  while (workers.length < maxWorkers) workers.push(new PoolWorker(removeWorker));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          const ch = new HashChannel(w, 'sha256');
          ch.digest().then(
            () => resolve(),
            () => resolve(),
          );
        }),
    ),
  );
}

/** Terminates every hashing thread; hashes in progress fail. A later StreamHasher starts new ones. */
export async function closeHashWorkers(): Promise<void> {
  const all = workers.splice(0);
  await Promise.all(all.map((w) => w.worker.terminate()));
}

/** @internal for tests: the live workers. */
export function _poolWorkers(): readonly PoolWorker[] {
  return workers;
}
