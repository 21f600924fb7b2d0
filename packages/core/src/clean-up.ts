import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from './logger';

export interface RemovedMaster {
  name: string;
  size: number;
  reason: 'ttl' | 'size' | 'amount';
}

export interface CleanUpResult {
  removed: RemovedMaster[];
  /** Bytes freed (apparent sizes of the removed masters). */
  freed: number;
  /** Bytes of `amount` that could not be freed (0 without an amount). */
  stillRequired: number;
  /** Bytes of every master left in the folder, in-use ones included. */
  totalSize: number;
}

export interface CleanUpPlan {
  masterDir: string;
  metaDir: string;
  cacheSize: number;
  ttlSeconds: number;
  amount?: number;
  /** Masters a fetch holds the lock of right now: never candidates. */
  busy: ReadonlySet<string>;
  now: number;
  logger: Logger;
}

interface Candidate {
  name: string;
  size: number;
  lastUsed: number;
}

/** Files examined between two yields to the event loop. */
const BATCH = 512;

/**
 * Evicts masters of one folder (spec.md §8): first those unused for longer than the TTL, oldest first, then
 * the oldest while the folder is over its size or `amount` is unmet. A master with more than one link is in
 * use and never a candidate. The caller holds the folder's clean-up lock.
 *
 * Uses synchronous stat/unlink in batches: per-file promise overhead would make evicting 10,000 files
 * several times slower than `rm -rf`, and each batch is short enough not to stall the event loop.
 */
export async function cleanUpFolder(plan: CleanUpPlan): Promise<CleanUpResult> {
  const { masterDir, busy, logger } = plan;
  const entries = await fs.promises.readdir(masterDir, { withFileTypes: true });
  const candidates: Candidate[] = [];
  let totalSize = 0;
  for (let i = 0; i < entries.length; i++) {
    if (i % BATCH === BATCH - 1) await yieldToLoop();
    const e = entries[i]!;
    if (!e.isFile()) continue;
    const st = lstatOrUndefined(path.join(masterDir, e.name));
    if (!st?.isFile()) continue;
    totalSize += st.size;
    if (st.nlink > 1 || busy.has(e.name)) continue;
    candidates.push({ name: e.name, size: st.size, lastUsed: Math.max(st.mtimeMs, st.atimeMs, st.ctimeMs) });
  }
  candidates.sort((a, b) => a.lastUsed - b.lastUsed);

  const metas = new Set(await fs.promises.readdir(plan.metaDir).catch(() => [] as string[]));
  const removed: RemovedMaster[] = [];
  let freed = 0;
  const amountLeft = () => (plan.amount === undefined ? 0 : Math.max(0, plan.amount - freed));
  const remove = (c: Candidate, reason: RemovedMaster['reason']): boolean => {
    const file = path.join(masterDir, c.name);
    // A fetch may have linked it since the scan: look again right before removing.
    const st = lstatOrUndefined(file);
    if (!st || st.nlink > 1) return false;
    try {
      fs.unlinkSync(file);
    } catch (err) {
      logger.warn({ err, master: c.name }, 'could not remove master');
      return false;
    }
    if (metas.has(c.name + '.json')) fs.rmSync(path.join(plan.metaDir, c.name + '.json'), { force: true });
    removed.push({ name: c.name, size: st.size, reason });
    freed += st.size;
    totalSize -= st.size;
    return true;
  };

  const threshold = plan.now - plan.ttlSeconds * 1000;
  const survivors: Candidate[] = [];
  let i = 0;
  for (; i < candidates.length; i++) {
    if (plan.amount !== undefined && amountLeft() === 0) break;
    const c = candidates[i]!;
    if (c.lastUsed >= threshold) break; // sorted: the rest are younger
    if (i % BATCH === BATCH - 1) await yieldToLoop();
    remove(c, 'ttl');
  }
  for (; i < candidates.length; i++) survivors.push(candidates[i]!);

  for (let j = 0; j < survivors.length; j++) {
    const overSize = totalSize > plan.cacheSize;
    if (!overSize && amountLeft() === 0) break;
    if (j % BATCH === BATCH - 1) await yieldToLoop();
    remove(survivors[j]!, overSize ? 'size' : 'amount');
  }

  if (totalSize > plan.cacheSize) {
    logger.info(
      { masterDir, totalSize, cacheSize: plan.cacheSize },
      'cache still larger than its size: the rest is in use',
    );
  }
  const stillRequired = amountLeft();
  if (stillRequired > 0) logger.warn({ masterDir, freed, stillRequired }, 'could not free the amount asked');
  return { removed, freed, stillRequired, totalSize };
}

function lstatOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch {
    return undefined; // vanished mid-scan: skip it
  }
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
