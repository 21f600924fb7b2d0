import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidDestination, UsageError } from '@imagecache/errors';
import { canonicalPath, CanonicalPathError, isInside } from '@imagecache/sources';

/** Linux's bounds: a name of at most 255 bytes, a path of at most 4095. */
const NAME_MAX = 255;
const PATH_MAX = 4095;

export interface DestinationRules {
  /**
   * Folders destinations must lie under (resolved once, here). Absent: any folder but a cache's master folder
   * (the embedded default; the worker and the API refuse to start without it unless told otherwise).
   */
  allowedRoots?: readonly string[];
  /** Create a destination's missing folders (only under an allowed root when roots are set). */
  createDirs?: boolean;
}

/** A destination that passed the rules. */
export interface CheckedDestination {
  /** The canonical folder's path joined with the name as given. */
  path: string;
  /** Canonical: symlinks resolved. */
  folder: string;
  name: string;
  /** The folder is missing and is to be created (only once the whole request is valid). */
  createFolder: boolean;
}

/**
 * Where a fetched image may be written (spec.md §5), in every mode (library, embedded CLI, worker). The
 * destination's folder is made canonical first, so no symlink can lead a check astray; then it is refused
 * inside any cache's master folder of this host (a write there would replace a master that later hits serve)
 * and outside the allowed roots when they are set. Placement then goes through a PinnedFolder.
 */
export class DestinationPolicy {
  private readonly roots?: readonly string[];

  constructor(
    private readonly rules: DestinationRules,
    /** The host's master folders, canonical. */
    private readonly cacheFolders: () => readonly string[],
  ) {
    this.roots = rules.allowedRoots?.map((r) => {
      try {
        return canonicalPath(r);
      } catch (err) {
        throw new UsageError(`destination root ${r} is unusable: ${(err as Error).message}`);
      }
    });
  }

  /** Validates `dest` without writing anything; throws InvalidDestination naming the rule broken. */
  check(dest: string): CheckedDestination {
    if (typeof dest !== 'string' || dest.length === 0 || !path.isAbsolute(dest)) {
      throw new InvalidDestination(`destination must be an absolute path, got ${JSON.stringify(dest)}`);
    }
    if (dest.includes('\0')) throw new InvalidDestination('destination holds a NUL byte');
    // Not normalized: `link/..` is the parent of the link's target (as the kernel reads it), which
    // canonicalPath works out; a lexical `..` would check one folder and write to another.
    const name = path.basename(dest);
    if (dest.endsWith('/') || name === '' || name === '.' || name === '..') {
      throw new InvalidDestination(`destination must name a file, got ${JSON.stringify(dest)}`);
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a short name is not counted.
    if (name.length * 3 > NAME_MAX && Buffer.byteLength(name) > NAME_MAX) {
      throw new InvalidDestination(
        `destination file name is ${Buffer.byteLength(name)} bytes long; at most ${NAME_MAX} are allowed`,
      );
    }
    if (dest.length * 3 > PATH_MAX && Buffer.byteLength(dest) > PATH_MAX) {
      throw new InvalidDestination(`destination path is longer than ${PATH_MAX} bytes`);
    }
    let folder: string;
    try {
      folder = canonicalPath(path.dirname(dest));
    } catch (err) {
      const why = err instanceof CanonicalPathError ? err.reason : String(err);
      throw new InvalidDestination(`destination folder of ${dest} can't be resolved: ${why}`, { dest });
    }
    const destPath = path.join(folder, name);
    for (const cache of this.cacheFolders()) {
      if (isInside(destPath, cache)) {
        throw new InvalidDestination(
          `destination ${destPath} is inside the cache folder ${cache}: destinations may not be written where masters live`,
          { dest: destPath },
        );
      }
    }
    if (this.roots && !this.roots.some((r) => isInside(folder, r))) {
      throw new InvalidDestination(
        `destination ${destPath} is outside destinations.allowedRoots (${this.roots.join(', ')})`,
        { dest: destPath },
      );
    }
    const st = this.statOf(folder, destPath);
    if (!st) {
      if (this.rules.createDirs) return { path: destPath, folder, name, createFolder: true };
      throw new InvalidDestination(`destination folder ${folder} does not exist`, { dest: destPath });
    }
    if (!st.isDirectory()) {
      throw new InvalidDestination(`destination folder ${folder} is not a folder`, { dest: destPath });
    }
    const existing = this.statOf(destPath, destPath, true);
    if (existing?.isDirectory()) throw new InvalidDestination(`destination ${destPath} is a folder`);
    return { path: destPath, folder, name, createFolder: false };
  }

  /** Creates the folder of a checked destination (the rules allowed it). */
  async createFolder(checked: CheckedDestination): Promise<void> {
    try {
      await fs.promises.mkdir(checked.folder, { recursive: true });
    } catch (err) {
      throw new InvalidDestination(
        `destination folder ${checked.folder} can't be created: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { dest: checked.path },
      );
    }
  }

  /** stat (lstat with `noFollow`) or undefined when missing; any other failure is an InvalidDestination. */
  private statOf(file: string, dest: string, noFollow = false): fs.Stats | undefined {
    try {
      return noFollow
        ? fs.lstatSync(file, { throwIfNoEntry: false })
        : fs.statSync(file, { throwIfNoEntry: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') return undefined;
      throw new InvalidDestination(`destination ${dest} is unusable (${code ?? 'error'})`, { dest });
    }
  }
}
