import * as fs from 'node:fs';
import * as path from 'node:path';
import { CacheFolderUnusable } from '@imagecache/errors';
import { canonicalPath } from '@imagecache/sources';

/** Private subfolders of a master folder; they are folders, so clean-up never takes them for masters. */
export const WORK_DIR = '.imagecache-work';
export const LOCK_DIR = '.imagecache-locks';
export const META_DIR = '.imagecache-meta';

/** The paths of one master folder. */
export class CacheFolder {
  readonly workDir: string;
  readonly lockDir: string;
  readonly metaDir: string;
  private ready?: Promise<void>;
  private canonical?: string;

  constructor(readonly masterDir: string) {
    this.workDir = path.join(masterDir, WORK_DIR);
    this.lockDir = path.join(masterDir, LOCK_DIR);
    this.metaDir = path.join(masterDir, META_DIR);
  }

  /**
   * The master folder with its symlinks resolved (what destinations are checked against). Kept once the folder
   * exists; before, worked out on each call (it may be made, or be a link, by then).
   */
  canonicalDir(): string {
    if (this.canonical) return this.canonical;
    let dir: string;
    try {
      dir = canonicalPath(this.masterDir);
    } catch {
      return this.masterDir;
    }
    if (fs.existsSync(dir)) this.canonical = dir;
    return dir;
  }

  masterPath(name: string): string {
    return path.join(this.masterDir, name);
  }

  metaPath(name: string): string {
    return path.join(this.metaDir, name + '.json');
  }

  /** Creates the folders once and proves the master folder writable. */
  ensure(): Promise<void> {
    this.ready ??= this.create().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  /**
   * On this thread: a handful of system calls on folders, once per process, where each round trip through
   * libuv's pool cost a fresh process's first fetch 50-90 us of wake-ups (the set-up ended 1.5 ms after the HEAD
   * it runs beside).
   */
  private async create(): Promise<void> {
    try {
      fs.mkdirSync(this.masterDir, { recursive: true, mode: 0o755 });
      for (const dir of [this.workDir, this.lockDir, this.metaDir])
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      fs.chmodSync(this.workDir, 0o700);
      // The probe lives among the metadata: the work area is swept by other processes starting meanwhile.
      const probe = path.join(this.metaDir, `.probe-${process.pid}-${Math.random().toString(36).slice(2)}`);
      fs.writeFileSync(probe, '');
      fs.unlinkSync(probe);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new CacheFolderUnusable(`cache folder ${this.masterDir} is not usable: ${e.code ?? e.message}`, {
        masterDir: this.masterDir,
        cause: err,
      });
    }
  }
}
