import type * as fs from 'node:fs';
import type { ImageInfo } from '@imagecache/sources';
import { isCopyOf } from './place-file';

/**
 * spec.md §2.4: immutable sources are fresh when present; otherwise fresh when the upstream Last-Modified
 * is not after the master's mtime (equal is fresh). Unknown Last-Modified means fetch again.
 */
export function isMasterFresh(info: ImageInfo, master: fs.Stats): boolean {
  if (info.immutable) return true;
  if (!info.updatedAt) return false;
  return info.updatedAt.getTime() <= master.mtimeMs;
}

/** spec.md §2.5: the destination is the master itself (same device and inode), or a copy of it. */
export function isDestFresh(dest: fs.Stats, master: fs.Stats): boolean {
  if (!dest.isFile()) return false;
  if (dest.dev === master.dev && dest.ino === master.ino) return true;
  return isCopyOf(dest, master);
}
