import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from './logger';
import { isMasterName } from './master-name';
import { unlinkIfThere } from './metadata-io';

export interface RemovedMaster {
  name: string;
  /** Allocated bytes freed (st_blocks × 512). */
  size: number;
  reason: 'ttl' | 'size' | 'amount';
}

export interface CleanUpResult {
  removed: RemovedMaster[];
  /** Bytes freed (allocated bytes of the removed masters). */
  freed: number;
  /** Bytes of `amount` that could not be freed (0 without an amount). */
  stillRequired: number;
  /** Allocated bytes of every file left in the folder (in-use masters and foreign files included). */
  totalSize: number;
  /** Files that are not masters: never evicted, but counted in `totalSize`. */
  foreign: string[];
}

/** A clean-up's result, and the number of files it left (the cache's usage event reports both). */
export interface FolderCleanUp {
  result: CleanUpResult;
  count: number;
}

export interface CleanUpPlan {
  masterDir: string;
  metaDir: string;
  /** Where a master is renamed before it is removed (the work area: same filesystem, private). */
  evictDir: string;
  cacheSize: number;
  ttlSeconds: number;
  amount?: number;
  /** Masters a fetch holds the lock of right now: never candidates. */
  busy: ReadonlySet<string>;
  /** The folder's entries when the caller has just listed it (a name gone since is skipped). */
  entries?: readonly fs.Dirent[];
  now: number;
  logger: Logger;
}

interface Candidate {
  name: string;
  size: number;
  lastUsed: number;
}

export interface FolderScan {
  /** Masters that may go (one link, not busy), oldest first. */
  candidates: Candidate[];
  /** Allocated bytes of every regular file directly in the folder. */
  totalSize: number;
  /** The regular files directly in the folder (masters and foreign files). */
  count: number;
  foreign: string[];
  metas: Set<string>;
}

/** Files examined between two yields to the event loop. */
const BATCH = 512;

/**
 * What a master folder holds: its masters (named as one, or vouched for by metadata) and what clean-up could
 * remove of them, and the files that are not masters. Sizes are allocated bytes (st_blocks × 512): a sparse
 * master takes what it holds, not what it could.
 */
export async function scanFolder(
  masterDir: string,
  metaDir: string,
  busy: ReadonlySet<string>,
  listed?: readonly fs.Dirent[],
): Promise<FolderScan> {
  const entries = listed ?? (await fs.promises.readdir(masterDir, { withFileTypes: true }));
  const metas = new Set(await fs.promises.readdir(metaDir).catch(() => [] as string[]));
  const candidates: Candidate[] = [];
  const foreign: string[] = [];
  let totalSize = 0;
  let count = 0;
  for (let i = 0; i < entries.length; i++) {
    if (i % BATCH === BATCH - 1) await yieldToLoop();
    const e = entries[i]!;
    if (!e.isFile()) continue;
    const st = lstatOrUndefined(inFolder(masterDir, e.name));
    if (!st?.isFile()) continue;
    totalSize += allocated(st);
    count += 1;
    if (!isMasterName(e.name) && !metas.has(e.name + '.json')) {
      foreign.push(e.name);
      continue;
    }
    if (st.nlink > 1 || busy.has(e.name)) continue;
    candidates.push({
      name: e.name,
      size: allocated(st),
      lastUsed: Math.max(st.mtimeMs, st.atimeMs, st.ctimeMs),
    });
  }
  candidates.sort((a, b) => a.lastUsed - b.lastUsed);
  return { candidates, totalSize, count, foreign, metas };
}

/**
 * Evicts masters of one folder (spec.md §8): first those unused for longer than the TTL, oldest first, then
 * the oldest while the folder is over its size or `amount` is unmet. A master with more than one link is in
 * use and never a candidate; a file that is not a master never is. The caller holds the folder's clean-up lock.
 *
 * Uses synchronous stat/rename/unlink in batches: per-file promise overhead would make evicting 10,000 files
 * several times slower than `rm -rf`, and each batch is short enough not to stall the event loop.
 */
export async function cleanUpFolder(plan: CleanUpPlan): Promise<FolderCleanUp> {
  const { masterDir, logger } = plan;
  const scan = await scanFolder(masterDir, plan.metaDir, plan.busy, plan.entries);
  const { candidates, metas, foreign } = scan;
  let totalSize = scan.totalSize;
  let count = scan.count;
  const removed: RemovedMaster[] = [];
  const asides: { aside: string; name: string; size: number }[] = [];
  let freed = 0;
  const amountLeft = () => (plan.amount === undefined ? 0 : Math.max(0, plan.amount - freed));
  const remove = (c: Candidate, reason: RemovedMaster['reason']): boolean => {
    const aside = setAside(masterDir, plan.evictDir, c, plan.now, logger);
    if (!aside) return false;
    asides.push({ ...aside, name: c.name });
    removed.push({ name: c.name, size: aside.size, reason });
    freed += aside.size;
    totalSize -= aside.size;
    count -= 1;
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

  if (asides.length > 0) {
    // A hit's link(2) that looked the master up just before the rename still lands on it after: give such
    // links time to land, then keep what gained one.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    for (const a of asides) {
      if (finishEviction(masterDir, a.aside, a.name)) {
        if (metas.has(a.name + '.json')) unlinkIfThere(path.join(plan.metaDir, a.name + '.json'));
        continue;
      }
      removed.splice(
        removed.findIndex((r) => r.name === a.name),
        1,
      );
      freed -= a.size;
      totalSize += a.size;
      count += 1;
    }
  }

  if (totalSize > plan.cacheSize) {
    logger.info(
      { masterDir, totalSize, cacheSize: plan.cacheSize },
      'cache still larger than its size: the rest is in use',
    );
  }
  const stillRequired = amountLeft();
  if (stillRequired > 0) logger.warn({ masterDir, freed, stillRequired }, 'could not free the amount asked');
  return { result: { removed, freed, stillRequired, totalSize, foreign }, count };
}

/** How long links in flight are given to land on a master set aside before it is removed. */
const SETTLE_MS = 5;

/**
 * First half of removing a master so that a hit can't link it meanwhile: it is renamed out of the folder (a
 * hit's link by name then finds nothing and goes to the miss path). Returns where it went and its allocated
 * bytes (the scan's), or undefined when it is gone. No second lstat here: what the scan saw is checked after the
 * settle (finishEviction), where a link gained since puts it back.
 */
function setAside(
  masterDir: string,
  evictDir: string,
  c: Candidate,
  at: number,
  logger: Logger,
): { aside: string; size: number } | undefined {
  const aside = inFolder(evictDir, evictingName(c.name, at));
  try {
    fs.renameSync(inFolder(masterDir, c.name), aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      logger.warn({ err, master: c.name }, 'could not remove master');
    return undefined;
  }
  return { aside, size: c.size };
}

/**
 * Second half: the master set aside is removed if it still has one link; one a hit linked meanwhile is in
 * use after all and goes back under its name (unless a fetch published a new master there meanwhile: the
 * destination then keeps this one alive). True when it was removed.
 */
function finishEviction(masterDir: string, aside: string, name: string): boolean {
  const st = lstatOrUndefined(aside);
  if (st && !st.isFile()) {
    // Not the file the scan saw (replaced since): it goes back as it was.
    try {
      fs.renameSync(aside, path.join(masterDir, name));
    } catch {
      // the name was taken meanwhile: the sweep will see this one in the work area
    }
    return false;
  }
  if (st && st.nlink > 1) {
    try {
      fs.linkSync(aside, path.join(masterDir, name));
    } catch {
      // EEXIST: a newer master took the name.
    }
    unlinkIfThere(aside);
    return false;
  }
  unlinkIfThere(aside);
  return true;
}

/**
 * A master being evicted, in the work area: `<name>.<ms since epoch, base 36>.evicting`. A crash between the
 * rename and the unlink leaves it to the sweep, which dates it by its name (it keeps the master's old mtime).
 */
const EVICTING = /^(.+)\.([0-9a-z]+)\.evicting$/;

export function evictingName(name: string, at: number): string {
  return `${name}.${at.toString(36)}.evicting`;
}

export function parseEvicting(entry: string): { name: string; at: number } | undefined {
  const m = EVICTING.exec(entry);
  return m ? { name: m[1]!, at: parseInt(m[2]!, 36) } : undefined;
}

export function allocated(st: fs.Stats): number {
  return st.blocks * 512;
}

/**
 * `dir`/`name` for a name read from `dir` (one component, no separator): three times a master when 10,000 go at
 * once, where path.join's normalising showed in the profile.
 */
function inFolder(dir: string, name: string): string {
  return dir + path.sep + name;
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
