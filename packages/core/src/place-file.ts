import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Errors of link(2) after which a copy can still do the job. */
const LINK_REFUSED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'EACCES']);

export type PlaceMethod = 'link' | 'copy';

/**
 * Makes `dest` hold `src`'s content, atomically: a reader of `dest` sees the old file or the new one, never
 * a partial one. Hard link when possible; else (other filesystem, links refused, or `copy` asked) a
 * copy-on-write clone or copy whose mtime is set to the source's, so a later freshness check recognises it.
 * Throws the ENOENT of `src` as is, so a caller can tell a vanished master.
 */
export async function placeFile(
  src: string,
  dest: string,
  opts: { copy?: boolean } = {},
): Promise<PlaceMethod> {
  if (!opts.copy) {
    // Links are metadata: synchronous, like the rest of the hit path (see metadata-io.ts).
    try {
      fs.linkSync(src, dest);
      return 'link';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') {
        const tmp = besidePath(dest);
        try {
          fs.linkSync(src, tmp);
          fs.renameSync(tmp, dest);
          return 'link';
        } catch (again) {
          fs.rmSync(tmp, { force: true });
          if (!LINK_REFUSED.has((again as NodeJS.ErrnoException).code ?? '')) throw again;
        }
      } else if (!LINK_REFUSED.has(code)) {
        throw err;
      }
    }
  }
  await besideThenRename(dest, async (tmp) => {
    await fs.promises.copyFile(src, tmp, fs.constants.COPYFILE_FICLONE);
    const st = await fs.promises.stat(src);
    await fs.promises.utimes(tmp, st.atime, st.mtime);
  });
  return 'copy';
}

/**
 * Temporaries beside destinations: `.imagecache-place-<ms since epoch, base 36>-<12 hex>`. The time in the
 * name dates one a crash left (a linked temporary carries its master's old mtime), so a sweep can tell it.
 */
const PLACE_PREFIX = '.imagecache-place-';
const PLACE_TEMP = /^\.imagecache-place-([0-9a-z]+)-[0-9a-f]{12}$/;
/** A placement temporary older than this (by its name and its mtime) is a crash's leftover. */
export const PLACE_TEMP_TTL_MS = 3600_000;

/** A name beside `dest`, short whatever `dest`'s is (a 255-byte name plus a suffix would not fit). */
function besidePath(dest: string): string {
  const name = `${PLACE_PREFIX}${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  return path.join(path.dirname(dest), name);
}

/**
 * Removes placement temporaries a crash left in `folder` (a pinned folder's path): regular files named as
 * ours, made more than PLACE_TEMP_TTL_MS ago and not written since (a copy in progress keeps its mtime
 * recent). Nothing else in the folder is touched. Returns how many went.
 */
export async function sweepPlaceTemps(folder: string, now = Date.now()): Promise<number> {
  let swept = 0;
  for (const entry of await fs.promises.readdir(folder).catch(() => [] as string[])) {
    const m = PLACE_TEMP.exec(entry);
    if (!m || now - parseInt(m[1]!, 36) < PLACE_TEMP_TTL_MS) continue;
    const file = path.join(folder, entry);
    const st = await fs.promises.lstat(file).catch(() => undefined);
    if (!st?.isFile() || now - st.mtimeMs < PLACE_TEMP_TTL_MS) continue;
    await fs.promises.rm(file, { force: true });
    swept++;
  }
  return swept;
}

async function besideThenRename(dest: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = besidePath(dest);
  try {
    await make(tmp);
    await fs.promises.rename(tmp, dest);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** A destination copied by placeFile carries its master's size and mtime (within the 1 ms utimes keeps). */
export function isCopyOf(dest: fs.Stats, master: fs.Stats): boolean {
  return dest.size === master.size && Math.abs(dest.mtimeMs - master.mtimeMs) < 1;
}
