import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CacheFolder } from './cache-folder';
import { parseEvicting } from './clean-up';
import type { Logger } from './logger';
import type { FolderLocks } from './master-locks';
import { listOrEmpty } from './metadata-io';

const WORK_SUFFIX = '.work';

/** The download's file in a master's work folder (kept there between attempts when it is to be continued). */
export const WORK_FILE = 'image';
/**
 * Leftovers nobody has touched for this long are removed by the sweep (spec.md §1): a partial download not
 * continued, a crashed eviction's file, Ironic's `tmp…/….part` folders and stray top-level `.part` files.
 */
export const LEFTOVER_TTL_MS = 3600_000;

/** Ironic's crash leftovers in a master folder: its download folders and partial files (`<name>.part`). */
const IRONIC_TMP_DIR = /^tmp[A-Za-z0-9_]{6,}$/;
const PART_SUFFIX = '.part';

/**
 * Work in progress: one private folder per master inside the master folder (same filesystem, so publishing
 * is a link). Only the holder of a master's lock works in it, so its name can be fixed: a retry, or the next
 * process after a crash, finds the partial download there and continues it.
 */
export class WorkArea {
  constructor(
    private readonly folder: CacheFolder,
    private readonly logger: Logger,
    private readonly locks: FolderLocks,
  ) {}

  /** The folder for work on master `name` (created if missing). Call it holding the master's lock. */
  async open(name: string): Promise<string> {
    const dir = this.dirOf(name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** The work folder of master `name` (made by `open`). */
  dirOf(name: string): string {
    return path.join(this.folder.workDir, name + WORK_SUFFIX);
  }

  /**
   * `linksOnly`: what the folder holds are other names of files that stay (a published master), so no data is
   * freed and removing them takes a few unlink(2)s: done on this thread, which saved a fresh process's first miss
   * the pool's round trips (about 1 ms). Otherwise (a failed download, GiBs to free) through libuv's pool.
   */
  async remove(dir: string, linksOnly = false): Promise<void> {
    try {
      if (linksOnly) fs.rmSync(dir, { recursive: true, force: true });
      else await fs.promises.rm(dir, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn({ err, dir }, 'could not remove work in progress');
    }
  }

  /**
   * Removes what nobody works on any more: work-area entries and (with `masterFolder`) Ironic leftovers in the
   * master folder that no one has changed for LEFTOVER_TTL_MS (or right away with `all`). Each is removed under its master's lock
   * taken with a try-lock: one another process or replica holds (it is resuming that download) is skipped,
   * and none can start on it while it goes. Returns how many went.
   */
  /**
   * `masterEntries`: the master folder's names, listed by the caller (a clean-up, which scans them next): its
   * leftovers are swept too. A start-up (every CLI call) gives none and stays one small listing.
   */
  async sweep(
    opts: { now?: number; all?: boolean; masterEntries?: readonly string[] } = {},
  ): Promise<number> {
    const now = opts.now ?? Date.now();
    const old = async (p: string) =>
      opts.all ||
      (now - (stampOf(path.basename(p)) ?? 0) >= LEFTOVER_TTL_MS &&
        now - (await lastChange(p)) >= LEFTOVER_TTL_MS);
    let swept = 0;
    const sweepOne = async (p: string, master: string) => {
      if (!(await old(p))) return;
      // Checked again under the lock: it may have been taken over between the look and the lock.
      const gone = await this.locks.tryWithLock(master, async () => {
        if (!(await old(p))) return false;
        await this.remove(p);
        return true;
      });
      if (gone) swept++;
    };
    // Work in progress and masters being evicted: a short listing.
    for (const entry of listOrEmpty(this.folder.workDir)) {
      const p = path.join(this.folder.workDir, entry);
      // Anything else in the private work area is no work of this version's: it goes at once.
      if (!entry.endsWith(WORK_SUFFIX) && !parseEvicting(entry)) {
        if (await this.locks.tryWithLock(entry, () => this.remove(p).then(() => true))) swept++;
        continue;
      }
      await sweepOne(p, masterOf(entry));
    }
    for (const entry of opts.masterEntries ?? []) {
      if (IRONIC_TMP_DIR.test(entry)) {
        const p = path.join(this.folder.masterDir, entry);
        if ((await fs.promises.lstat(p).catch(() => undefined))?.isDirectory())
          await sweepOne(p, `ironic-${entry}`);
      } else if (entry.endsWith(PART_SUFFIX)) {
        await sweepOne(path.join(this.folder.masterDir, entry), entry.slice(0, -PART_SUFFIX.length));
      }
    }
    if (swept > 0)
      this.logger.info({ masterDir: this.folder.masterDir, swept }, 'swept leftover work in progress');
    return swept;
  }
}

/** The master a work-area entry belongs to (its lock guards it). */
function masterOf(entry: string): string {
  if (entry.endsWith(WORK_SUFFIX)) return entry.slice(0, -WORK_SUFFIX.length);
  const evicting = parseEvicting(entry);
  return evicting ? evicting.name : entry;
}

/** When an entry whose name carries its creation time was made (a master set aside keeps its old mtime). */
function stampOf(entry: string): number | undefined {
  return parseEvicting(entry)?.at;
}

/** The latest mtime of `p` and, for a folder, of what it holds. */
async function lastChange(p: string): Promise<number> {
  const st = await fs.promises.lstat(p).catch(() => undefined);
  if (!st) return Number.POSITIVE_INFINITY; // gone meanwhile: nothing to do
  let latest = st.mtimeMs;
  if (!st.isDirectory()) return latest;
  for (const f of await fs.promises.readdir(p).catch(() => [] as string[])) {
    const s = await fs.promises.lstat(path.join(p, f)).catch(() => undefined);
    if (s) latest = Math.max(latest, s.mtimeMs);
  }
  return latest;
}
