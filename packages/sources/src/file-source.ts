import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ImageCacheError,
  ImageDownloadFailed,
  ImageNotFound,
  ImageRefValidationFailed,
  OperationAborted,
} from '@imagecache/errors';
import { canonicalPath, type CanonicalPathError } from './canonical-path';
import { checkHrefText, safeHrefOf } from './href';
import { DEFAULT_FILE_ROOTS, type SourceOptions } from './options';
import type { ImageBody, ImageInfo, ImageSource, OpenOptions } from './types';

/** Folders no file:// source may come from, whatever the allowed roots say (spec.md §7). */
export const FORBIDDEN_FOLDERS: readonly string[] = Object.freeze([
  '/dev',
  '/sys',
  '/proc',
  '/boot',
  '/etc',
  '/run',
]);

/**
 * A second name of the file may lie outside the roots (a hard link made inside a root to a file elsewhere):
 * its link count can't tell where the other names are, so any count over 1 is refused unless allowed.
 */
const HARD_LINK_REFUSAL =
  'the file has more than one hard link (one may lie outside the allowed folders); set file.allowHardLinks to accept it';

/** Read size for file sources. */
export const FILE_HIGH_WATER_MARK = 4 << 20;

/**
 * A local file named by `file:///abs/path` (spec.md §7). `FileSource.resolve` checks everything before any read:
 * the canonical path (symlinks and `..` resolved) must be outside /dev, /sys, /proc, /boot, /etc and /run, under
 * one of the canonical `fileRoots`, and a regular file. `open()` checks again that the file it opens is the very
 * one that was checked (same device and inode, still regular). File sources are never cached (`noCache`).
 */
export class FileSource implements ImageSource {
  readonly kind = 'file' as const;
  readonly imageId: undefined = undefined;
  readonly safeHref: string;

  private constructor(
    readonly href: string,
    /** The canonical path that passed the checks. */
    readonly path: string,
    readonly fileName: string,
    private readonly identity: { dev: number; ino: number; allowHardLinks: boolean },
  ) {
    this.safeHref = safeHrefOf(href);
  }

  /** Validates a file:// href against the rules of spec.md §7; throws ImageRefValidationFailed (or ImageNotFound). */
  static async resolve(href: string, options: SourceOptions = {}): Promise<FileSource> {
    const safe = safeHrefOf(href);
    const refuse = (why: string) =>
      new ImageRefValidationFailed(`file image ${safe} refused: ${why}`, { href: safe });
    checkHrefText(href);
    if (!/^file:\/\//i.test(href)) throw refuse('expected file:///absolute/path');
    let url: URL;
    try {
      url = new URL(href);
    } catch {
      throw refuse('not a well-formed URL');
    }
    if (url.hostname !== '' && url.hostname !== 'localhost')
      throw refuse(`host "${url.hostname}" is not this one`);
    if (url.search || url.hash) throw refuse('a file URL takes no query or fragment');
    let lexical: string;
    try {
      lexical = fileURLToPath(url);
    } catch (err) {
      throw refuse((err as Error).message);
    }
    if (lexical.includes('\0')) throw refuse('the path holds a NUL byte');

    const roots = await canonicalRoots(options.fileRoots ?? DEFAULT_FILE_ROOTS);
    const allowed = [
      ...roots,
      ...(options.fileRoots ?? DEFAULT_FILE_ROOTS).filter((r) => path.isAbsolute(r)),
    ];
    // The path as written is judged first, before anything is looked up: outside the roots, whether a file
    // exists (or where a link points) is never told.
    if (isForbidden(lexical))
      throw refuse(`the path is in a system folder (${FORBIDDEN_FOLDERS.join(', ')})`);
    if (!isUnder(lexical, allowed)) throw refuse('the path is outside the allowed folders');
    // Where the path leads, links followed even when their target is missing: a link out of the roots gets the
    // same refusal whether or not anything is at the other end (no existence oracle).
    let canonical: string;
    try {
      canonical = canonicalPath(lexical);
    } catch (err) {
      throw refuse(`cannot resolve the path (${(err as CanonicalPathError).reason ?? 'error'})`);
    }
    if (isForbidden(canonical) || !isUnder(canonical, roots)) {
      throw refuse('the path resolves (through a link) outside the allowed folders');
    }
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(canonical);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR')
        throw new ImageNotFound(`file image ${safe} not found`, { href: safe });
      throw refuse(`cannot stat (${code ?? 'error'})`);
    }
    if (!st.isFile()) throw refuse('not a regular file');
    if (st.nlink > 1 && !options.fileAllowHardLinks) throw refuse(HARD_LINK_REFUSAL);
    return new FileSource(href, canonical, path.basename(lexical), {
      dev: st.dev,
      ino: st.ino,
      allowHardLinks: options.fileAllowHardLinks ?? false,
    });
  }

  async show(): Promise<ImageInfo> {
    const st = await this.statChecked();
    return this.infoOf(st);
  }

  async open(opts: OpenOptions = {}): Promise<ImageBody> {
    if (opts.signal?.aborted) throw this.aborted();
    let fh: fs.promises.FileHandle;
    try {
      // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO swapped in since the check is refused, never waited on.
      fh = await fs.promises.open(
        this.path,
        fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
      );
    } catch (err) {
      throw this.changed((err as NodeJS.ErrnoException).code ?? 'error');
    }
    let st: fs.Stats;
    try {
      st = await fh.stat();
      if (!st.isFile() || st.dev !== this.identity.dev || st.ino !== this.identity.ino) {
        throw this.changed('not the file that was checked');
      }
      if (st.nlink > 1 && !this.identity.allowHardLinks) throw this.changed(HARD_LINK_REFUSAL);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err instanceof ImageCacheError
        ? err
        : this.changed((err as NodeJS.ErrnoException).code ?? 'error');
    }
    const info = this.infoOf(st);
    const offset = opts.offset ?? 0;
    const start = offset > 0 && offset <= st.size && opts.validator === info.validator ? offset : 0;
    const stream = fs.createReadStream('', {
      fd: fh,
      start,
      highWaterMark: FILE_HIGH_WATER_MARK,
      autoClose: true,
    });
    // Read errors surface as typed errors; an abort as OperationAborted.
    const destroy = stream._destroy.bind(stream);
    stream._destroy = (err, cb) =>
      destroy(err, (e) =>
        cb(
          e && !(e instanceof ImageCacheError)
            ? new ImageDownloadFailed(`reading ${this.safeHref} failed: ${e.message}`, {
                href: this.safeHref,
                cause: e,
                retryable: false,
              })
            : e,
        ),
      );
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => stream.destroy(this.aborted());
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return { stream, start, totalSize: st.size, info };
  }

  private infoOf(st: fs.Stats): ImageInfo {
    return {
      size: st.size,
      updatedAt: st.mtime,
      noCache: true,
      immutable: false,
      validator: `${st.size}-${st.mtimeMs}`,
      fileName: this.fileName,
    };
  }

  private async statChecked(): Promise<fs.Stats> {
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(this.path);
    } catch (err) {
      throw this.changed((err as NodeJS.ErrnoException).code ?? 'error');
    }
    if (!st.isFile() || st.dev !== this.identity.dev || st.ino !== this.identity.ino) {
      throw this.changed('not the file that was checked');
    }
    return st;
  }

  private changed(why: string): ImageRefValidationFailed {
    return new ImageRefValidationFailed(`file image ${this.safeHref} changed since it was checked: ${why}`, {
      href: this.safeHref,
    });
  }

  private aborted(): OperationAborted {
    return new OperationAborted(`reading ${this.safeHref}: aborted`, { href: this.safeHref });
  }
}

function isUnder(p: string, roots: readonly string[]): boolean {
  return roots.some((r) => r === '/' || p === r || p.startsWith(`${r}/`));
}

function isForbidden(p: string): boolean {
  return FORBIDDEN_FOLDERS.some((f) => p === f || p.startsWith(`${f}/`));
}

/** The allowed roots with symlinks resolved; a root that does not exist can hold nothing and is skipped. */
async function canonicalRoots(roots: readonly string[]): Promise<string[]> {
  const out = await Promise.all(
    roots.map(async (r) => {
      if (!path.isAbsolute(r)) return undefined;
      try {
        return await fs.promises.realpath(r);
      } catch {
        return undefined;
      }
    }),
  );
  return out.filter((r): r is string => r !== undefined);
}
