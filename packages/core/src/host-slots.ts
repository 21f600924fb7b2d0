import * as fs from 'node:fs';
import * as path from 'node:path';
import { OperationAborted } from '@imagecache/errors';
import * as lockfile from 'proper-lockfile'; // with the engine: every download takes a slot (master-locks.ts)
import type { Logger } from './logger';
import { Semaphore } from './semaphore';

/** What bounds the downloads (and conversions) running at once. */
export interface DownloadLimiter {
  readonly size: number;
  /** Resolves with the release of a slot once one is free; OperationAborted when `signal` fires first. */
  acquire(signal?: AbortSignal): Promise<() => void>;
}

const STALE_MS = 10_000;
const UPDATE_MS = 2_500;
const POLL_MAX_MS = 200;

/**
 * `downloadConcurrency` for the whole host: `size` slot locks in a folder every process of the host uses (the
 * embedded CLI, every worker replica), so N processes run at most `size` downloads together, not N × size. A slot
 * is a lock folder refreshed while held and taken over once stale (a crashed holder frees its slot within
 * 10 s). Waiters of one process queue on a local semaphore first, so only `size` of them poll the folder.
 * When the folder can't be used (not writable), the limit falls back to this process alone, with a warning.
 */
export class HostDownloadSlots implements DownloadLimiter {
  private readonly local: Semaphore;
  private unusable = false;

  constructor(
    readonly size: number,
    readonly dir: string,
    private readonly logger?: Logger,
  ) {
    this.local = new Semaphore(size);
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    const releaseLocal = await this.local.acquire(signal);
    let releaseSlot: () => Promise<void>;
    try {
      releaseSlot = await this.takeSlot(signal);
    } catch (err) {
      releaseLocal();
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      releaseLocal();
      releaseSlot().catch((err: unknown) => this.logger?.warn({ err }, 'download slot release failed'));
    };
  }

  private giveUp(err: unknown): () => Promise<void> {
    if (!this.unusable) {
      this.logger?.warn(
        { err, dir: this.dir },
        'download slot folder unusable: downloadConcurrency holds for this process only',
      );
    }
    this.unusable = true;
    return () => Promise.resolve();
  }

  private async takeSlot(signal?: AbortSignal): Promise<() => Promise<void>> {
    if (this.unusable) return () => Promise.resolve();
    try {
      await fs.promises.mkdir(this.dir, { recursive: true });
    } catch (err) {
      return this.giveUp(err);
    }
    const first = Math.floor(Math.random() * this.size);
    let wait = 10;
    for (;;) {
      if (signal?.aborted) throw new OperationAborted('cancelled while waiting for a download slot');
      for (let k = 0; k < this.size; k++) {
        const slot = path.join(this.dir, `slot-${(first + k) % this.size}`);
        try {
          return await lockfile.lock(slot, {
            realpath: false,
            lockfilePath: `${slot}.lock`,
            stale: STALE_MS,
            update: UPDATE_MS,
            retries: 0,
            // A slot taken over while held (this process stalled for 10 s) only lets one more download run.
            onCompromised: (err) => this.logger?.warn({ err, slot }, 'download slot taken over'),
          });
        } catch (err) {
          // Another user's folder (EACCES), a read-only one: a fetch never fails for want of a slot folder.
          if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') return this.giveUp(err);
        }
      }
      await sleep(wait, signal);
      wait = Math.min(wait * 2, POLL_MAX_MS);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
