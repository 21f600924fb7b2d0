import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CacheFolder } from './cache-folder';
import type { Logger } from './logger';
import { LOCK_STALE_MS } from './master-locks';

/**
 * Work in progress: one private folder per download inside the master folder (same filesystem, so
 * publishing is a link). Only the holder of a master's lock works on it, so a work folder whose master
 * lock is gone or stale belongs to a crashed process.
 */
export class WorkArea {
  constructor(
    private readonly folder: CacheFolder,
    private readonly logger: Logger,
  ) {}

  /** A new private folder for work on master `name`. */
  create(name: string): Promise<string> {
    return fs.promises.mkdtemp(path.join(this.folder.workDir, `${name}.`));
  }

  async remove(dir: string): Promise<void> {
    await fs.promises.rm(dir, { recursive: true, force: true }).catch((err) => {
      this.logger.warn({ err, dir }, 'could not remove work in progress');
    });
  }

  /** Removes the work folders nobody works on any more. Returns how many went. */
  async sweep(now = Date.now()): Promise<number> {
    const entries = await fs.promises.readdir(this.folder.workDir).catch(() => [] as string[]);
    let swept = 0;
    for (const entry of entries) {
      const dot = entry.lastIndexOf('.');
      const name = dot > 0 ? entry.slice(0, dot) : entry;
      if (await this.isHeld(name, now)) continue;
      await this.remove(path.join(this.folder.workDir, entry));
      swept++;
    }
    if (swept > 0) this.logger.info({ masterDir: this.folder.masterDir, swept }, 'swept leftover work in progress');
    return swept;
  }

  private async isHeld(name: string, now: number): Promise<boolean> {
    const st = await fs.promises.stat(path.join(this.folder.lockDir, `${name}.lock`)).catch(() => undefined);
    return st !== undefined && now - st.mtimeMs < LOCK_STALE_MS;
  }
}
