import type * as fs from 'node:fs';

/**
 * What a master was when it was published (spec.md §5): the file a hit serves must still be that one, with
 * the same size and mtime. A hard-linked destination written in place is the master's inode itself: the
 * write changes its mtime (and usually size), so the next hit sees it and fetches again instead of serving
 * bytes nobody verified. (ctime can't be used: every link to a destination changes it.)
 */
export interface MasterIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export function identityOf(st: fs.Stats): MasterIdentity {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

export function sameIdentity(recorded: MasterIdentity, st: fs.Stats): boolean {
  return (
    recorded.dev === st.dev &&
    recorded.ino === st.ino &&
    recorded.size === st.size &&
    recorded.mtimeMs === st.mtimeMs
  );
}
