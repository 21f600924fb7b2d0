import * as fs from 'node:fs';
import { ImageConvertFailed } from '@imagecache/errors';
import { qemuFormatName } from '../policy';
import type { ImageFormat } from '../types';
import type { ByteBound } from './byte-bound';
import { runTool } from './run-tool';

export interface ConvertOptions {
  /** The format the inspector detected: qemu-img is never asked to guess. */
  sourceFormat: ImageFormat;
  /** Address-space cap of the qemu-img process, bytes; 0 = none. Default 2 GiB. */
  memoryCap?: number;
  /** Write the output straight to the disk (`-t none`) where its filesystem takes O_DIRECT. Default true. */
  direct?: boolean;
  /** Attempts when qemu-img runs out of memory or threads. Default 3. */
  attempts?: number;
  signal?: AbortSignal;
  /** The qemu-img binary. Default `qemu-img` on the PATH. */
  qemuImg?: string;
  /** For messages only (redacted). */
  href?: string;
  /**
   * Most bytes the output may allocate (st_blocks × 512: raw output is sparse, its apparent size is the virtual
   * size). Watched while qemu-img runs; past it qemu-img is killed and `bound.error` thrown.
   */
  bound?: ByteBound;
}

/** How often the output's allocated size is looked at while qemu-img runs. */
const WATCH_MS = 5;

const TRANSIENT = /Cannot allocate memory|Resource temporarily unavailable/;
/** What qemu-img says when the output's filesystem refuses O_DIRECT (`-t none`). */
const NO_DIRECT = /O_DIRECT|Invalid argument/;

/**
 * `qemu-img convert -f <detected> -O raw` into `dest` (sparse), under an address-space limit, with
 * MALLOC_ARENA_MAX=3 as Ironic runs it. `dest` is removed on every failure.
 *
 * The output is written straight to the disk (`-t none`, O_DIRECT) unless its filesystem refuses it: through the
 * page cache, the system time of converting 1 GiB swung from 0.3 to 2.1 s with what the kernel had free; straight
 * to the disk it stayed at 0.2 s, the wall at 0.9-1.3 s.
 */
export async function convertToRaw(src: string, dest: string, opts: ConvertOptions): Promise<void> {
  const cap = opts.memoryCap ?? 2 * 1024 ** 3;
  const qemuImg = opts.qemuImg ?? 'qemu-img';
  const tool = cap > 0 ? 'prlimit' : qemuImg;
  const attempts = Math.max(1, opts.attempts ?? 3);
  const from = qemuFormatName(opts.sourceFormat);
  let direct = opts.direct ?? true;
  let last = '';
  try {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const argv = [
        qemuImg,
        'convert',
        '-q',
        ...(direct ? ['-t', 'none'] : []),
        '-f',
        from,
        '-O',
        'raw',
        src,
        dest,
      ];
      const args = cap > 0 ? [`--as=${cap}`, '--', ...argv] : argv.slice(1);
      const run = await watched(dest, opts.bound, opts.signal, (signal) =>
        runTool(tool, args, { signal, env: { MALLOC_ARENA_MAX: '3' } }),
      );
      if (run.code === 0) return;
      last = run.stderr || `exit ${run.code ?? run.signal}`;
      await fs.promises.rm(dest, { force: true });
      if (direct && NO_DIRECT.test(last)) {
        direct = false; // once more, through the page cache (not counted as an attempt)
        attempt--;
        continue;
      }
      if (!TRANSIENT.test(last)) break;
    }
  } catch (err) {
    await fs.promises.rm(dest, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ImageConvertFailed(`${tool} is not installed (Debian package qemu-utils)`, {
        href: opts.href,
      });
    }
    throw err;
  }
  await fs.promises.rm(dest, { force: true });
  throw new ImageConvertFailed(`qemu-img could not convert the ${opts.sourceFormat} image to raw: ${last}`, {
    href: opts.href,
    sourceFormat: opts.sourceFormat,
  });
}

/**
 * Runs `fn` while polling `dest`'s allocated size; past the bound, the run's signal fires (killing the tool)
 * and the bound's error is thrown instead of the tool's outcome.
 */
async function watched<T>(
  dest: string,
  bound: ByteBound | undefined,
  signal: AbortSignal | undefined,
  fn: (signal?: AbortSignal) => Promise<T>,
): Promise<T> {
  if (!bound) return fn(signal);
  const stop = new AbortController();
  let over: number | undefined;
  const timer = setInterval(() => {
    const st = fs.statSync(dest, { throwIfNoEntry: false });
    const allocated = st ? st.blocks * 512 : 0;
    if (allocated > bound.bytes && over === undefined) {
      over = allocated;
      stop.abort();
    }
  }, WATCH_MS);
  try {
    const run = await fn(signal ? AbortSignal.any([signal, stop.signal]) : stop.signal).catch((err) => {
      if (over === undefined || signal?.aborted) throw err;
      return undefined;
    });
    if (over !== undefined) throw bound.error(over);
    return run as T;
  } finally {
    clearInterval(timer);
  }
}
