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

/** A name beside `dest`, short whatever `dest`'s is (a 255-byte name plus a suffix would not fit). */
function besidePath(dest: string): string {
  return path.join(path.dirname(dest), `.imagecache-place-${randomBytes(6).toString('hex')}`);
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
