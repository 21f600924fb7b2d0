import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CacheFolder } from './cache-folder';
import type { Logger } from './logger';
import { LOCK_STALE_MS } from './master-locks';

const WORK_SUFFIX = '.work';
/** A partial download nobody has continued for this long is dropped. */
export const PARTIAL_TTL_MS = 3600_000;

/**
 * Work in progress: one private folder per master inside the master folder (same filesystem, so publishing
 * is a link). Only the holder of a master's lock works in it, so its name can be fixed: a retry, or the next
 * process after a crash, finds the partial download there and continues it.
 */
export class WorkArea {
  constructor(
    private readonly folder: CacheFolder,
    private readonly logger: Logger,
  ) {}

  /** The folder for work on master `name` (created if missing). Call it holding the master's lock. */
  async open(name: string): Promise<string> {
    const dir = path.join(this.folder.workDir, name + WORK_SUFFIX);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async remove(dir: string): Promise<void> {
    await fs.promises.rm(dir, { recursive: true, force: true }).catch((err) => {
      this.logger.warn({ err, dir }, 'could not remove work in progress');
    });
  }

  /**
   * Removes what nobody works on any more: folders whose master lock is gone or stale, once their partial
   * download is older than PARTIAL_TTL_MS (or right away with `all`). Returns how many went.
   */
  async sweep(opts: { now?: number; all?: boolean } = {}): Promise<number> {
    const now = opts.now ?? Date.now();
    const entries = await fs.promises.readdir(this.folder.workDir).catch(() => [] as string[]);
    let swept = 0;
    for (const entry of entries) {
      const dir = path.join(this.folder.workDir, entry);
      const name = entry.endsWith(WORK_SUFFIX) ? entry.slice(0, -WORK_SUFFIX.length) : entry;
      if (await this.isHeld(name, now)) continue;
      if (!opts.all && entry.endsWith(WORK_SUFFIX) && now - (await lastChange(dir)) < PARTIAL_TTL_MS)
        continue;
      await this.remove(dir);
      swept++;
    }
    if (swept > 0)
      this.logger.info({ masterDir: this.folder.masterDir, swept }, 'swept leftover work in progress');
    return swept;
  }

  private async isHeld(name: string, now: number): Promise<boolean> {
    const st = await fs.promises.stat(path.join(this.folder.lockDir, `${name}.lock`)).catch(() => undefined);
    return st !== undefined && now - st.mtimeMs < LOCK_STALE_MS;
  }
}

async function lastChange(dir: string): Promise<number> {
  const files = await fs.promises.readdir(dir).catch(() => [] as string[]);
  let latest = (await fs.promises.stat(dir).catch(() => undefined))?.mtimeMs ?? 0;
  for (const f of files) {
    const st = await fs.promises.stat(path.join(dir, f)).catch(() => undefined);
    if (st && st.mtimeMs > latest) latest = st.mtimeMs;
  }
  return latest;
}
