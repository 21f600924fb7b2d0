import * as fs from 'node:fs';
import * as path from 'node:path';

/** Symbolic links followed at most while resolving one path (Linux's own bound, ELOOP past it). */
const MAX_LINKS = 40;

/** Why a path could not be made canonical (a loop, an unreadable folder, a name too long...). */
export class CanonicalPathError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`cannot resolve ${path}: ${reason}`);
  }
}

/**
 * `p` with every symbolic link resolved, as far as the path exists: the part that does not exist yet (a file
 * about to be written, a folder about to be made) is appended as written. A link whose target is missing is
 * still followed, so a check of the result sees where the path *leads*, whether or not anything is there (the
 * file:// rules must not tell which outside paths exist; a destination's folder must not lead into a cache).
 * Synchronous: a few metadata calls, on the hit path too. Throws CanonicalPathError, never a raw system error.
 */
export function canonicalPath(p: string): string {
  if (!path.isAbsolute(p)) throw new CanonicalPathError(p, 'not an absolute path');
  if (p.includes('\0')) throw new CanonicalPathError(p, 'holds a NUL byte');
  // The common case, a path that exists whole, in one call: realpath(3) resolves each link before the `..` after
  // it, as the walk below does, and fails for anything the walk handles differently (a missing part, a dangling
  // link, an unreadable folder, a loop), which the walk then answers. Its lstat per segment, each building a
  // Stats object, was most of a warm hit's destination check.
  try {
    return fs.realpathSync.native(p);
  } catch {
    // walked below
  }
  return walk(p);
}

function walk(p: string): string {
  let links = 0;
  // Resolved prefix (always canonical, existing) and the segments still to walk.
  let done = '/';
  // Not normalized first: `link/..` is the parent of the link's target, as the kernel reads it.
  const todo = p.split('/').filter(Boolean).reverse();
  let missing = false;
  while (todo.length > 0) {
    const seg = todo.pop()!;
    if (seg === '.') continue;
    if (seg === '..') {
      done = path.dirname(done);
      continue;
    }
    const next = path.join(done, seg);
    if (missing) {
      done = next;
      continue;
    }
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(next, { throwIfNoEntry: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTDIR') throw new CanonicalPathError(p, code ?? String(err));
      st = undefined;
    }
    if (!st) {
      // Nothing there: the rest is taken as written.
      missing = true;
      done = next;
      continue;
    }
    if (!st.isSymbolicLink()) {
      done = next;
      continue;
    }
    if (++links > MAX_LINKS) throw new CanonicalPathError(p, 'too many levels of symbolic links');
    let target: string;
    try {
      target = fs.readlinkSync(next);
    } catch (err) {
      throw new CanonicalPathError(p, (err as NodeJS.ErrnoException).code ?? String(err));
    }
    if (path.isAbsolute(target)) done = '/';
    todo.push(...target.split('/').filter(Boolean).reverse());
  }
  return done;
}

/** `p` is `root` or inside it (both canonical). */
export function isInside(p: string, root: string): boolean {
  return root === '/' || p === root || p.startsWith(`${root}/`);
}
