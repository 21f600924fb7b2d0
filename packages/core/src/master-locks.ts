import * as fs from 'node:fs';
import * as path from 'node:path';
import { OperationAborted } from '@imagecache/errors';
// Loaded with the engine, not by the first fetch: every miss takes this lock, and a fresh process's first miss
// (a CLI call, a worker's first job) paid for loading it inside the call (issue 10).
import * as lockfile from 'proper-lockfile';
import type { Logger } from './logger';
import { listOrEmpty } from './metadata-io';

const LOCK_SUFFIX = '.lock';
/** A holder that stopped refreshing its lock for this long is taken as dead (its process crashed). */
export const LOCK_STALE_MS = 10_000;
const UPDATE_MS = 2_500;
const POLL_MIN_MS = 10;
/** Waiters poll a held lock at most this far apart: a finished download is noticed within it. */
const POLL_MAX_MS = 100;

/**
 * Named locks on a master folder that hold across processes (a lock folder per name, refreshed while held,
 * taken over once stale) and serialise callers inside one process without polling.
 */
export class FolderLocks {
  private readonly local = new Map<string, Promise<void>>();

  constructor(
    private readonly lockDir: string,
    private readonly logger: Logger,
  ) {}

  /** Runs `fn` while holding lock `name`; `fn` gets a signal that fires if the lock is lost. */
  async withLock<T>(name: string, fn: (lost: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.local.get(name) ?? Promise.resolve();
    let releaseLocal!: () => void;
    const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
    const tail = previous.then(() => mine);
    this.local.set(name, tail);
    try {
      await abortable(previous, signal);
      const lost = new AbortController();
      const release = await this.acquire(name, lost, signal);
      try {
        return await fn(lost.signal);
      } finally {
        await release().catch((err) => this.logger.warn({ err, lock: name }, 'lock release failed'));
      }
    } finally {
      releaseLocal();
      if (this.local.get(name) === tail) this.local.delete(name);
    }
  }

  /**
   * Runs `fn` holding lock `name` if nobody holds it (in this process or another); otherwise returns
   * undefined at once without running it. For sweeps, which must never wait on (or race) live work.
   */
  async tryWithLock<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.local.has(name)) return undefined;
    let releaseLocal!: () => void;
    const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
    this.local.set(name, mine);
    try {
      const release = await this.attempt(name, new AbortController());
      if (!release) return undefined;
      try {
        return await fn();
      } finally {
        await release().catch((err) => this.logger.warn({ err, lock: name }, 'lock release failed'));
      }
    } finally {
      releaseLocal();
      if (this.local.get(name) === mine) this.local.delete(name);
    }
  }

  /** Names whose lock folder exists right now (held by some process), read in one directory listing. */
  async heldNames(): Promise<Set<string>> {
    const entries = listOrEmpty(this.lockDir); // a lock folder per lock held right now
    return new Set(
      entries.filter((e) => e.endsWith(LOCK_SUFFIX)).map((e) => e.slice(0, -LOCK_SUFFIX.length)),
    );
  }

  private async acquire(
    name: string,
    lost: AbortController,
    signal?: AbortSignal,
  ): Promise<() => Promise<void>> {
    let wait = POLL_MIN_MS;
    for (;;) {
      if (signal?.aborted) throw new OperationAborted('cancelled while waiting for a lock', { lock: name });
      const release = await this.attempt(name, lost);
      if (release) return release;
      await this.released(name + LOCK_SUFFIX, wait, signal);
      wait = Math.min(wait * 2, POLL_MAX_MS);
    }
  }

  /**
   * One try at the cross-process lock: its release, or undefined when another holder has it. On this thread
   * (the library's sync form: a mkdir and a stat to take it, an rmdir to let go, its refresh a utimes every
   * 2.5 s): each round trip through libuv's pool cost 50-90 us of wake-ups, and a miss takes two locks.
   */
  private async attempt(name: string, lost: AbortController): Promise<(() => Promise<void>) | undefined> {
    const lockfilePath = path.join(this.lockDir, name + LOCK_SUFFIX);
    try {
      const release = lockfile.lockSync(path.join(this.lockDir, name), {
        realpath: false,
        lockfilePath,
        stale: LOCK_STALE_MS,
        update: UPDATE_MS,
        retries: 0,
        onCompromised: (err) => {
          this.logger.warn({ err, lock: name }, 'lock compromised: stopping the work it protected');
          lost.abort(err);
        },
      });
      return async () => release();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      return undefined;
    }
  }

  /**
   * Waits until lock folder `entry` changes (inotify: a waiter in another process wakes as soon as the holder
   * lets go, not at its next poll) or `ms` pass, whichever is first.
   */
  private released(entry: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let watcher: fs.FSWatcher | undefined;
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        watcher?.close();
        signal?.removeEventListener('abort', done);
        resolve();
      }
      try {
        watcher = fs.watch(this.lockDir, { persistent: false }, (_event, file) => {
          if (file === null || String(file) === entry) done();
        });
        watcher.on('error', () => undefined);
      } catch {
        // No watch on this filesystem: polling alone.
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

async function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) throw new OperationAborted('cancelled');
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new OperationAborted('cancelled while waiting for a lock'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
