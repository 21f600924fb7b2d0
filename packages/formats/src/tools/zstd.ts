import * as fs from 'node:fs';
import { InvalidImage } from '@imagecache/errors';
import type { ByteBound } from './byte-bound';
import { runTool } from './run-tool';

export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** True when the file starts with the zstd frame magic (spec.md §4). */
export async function isZstd(file: string): Promise<boolean> {
  // Four bytes: read on this thread (see BoundedReader).
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    return fs.readSync(fd, head, 0, 4, 0) === 4 && head.equals(ZSTD_MAGIC);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The content size the first zstd frame's header declares, or undefined when it declares none (a streamed
 * frame). A lower bound of the decompressed size (more frames may follow): enough to refuse a bomb that
 * announces itself, before anything is written. RFC 8878 §3.1.1.1.
 */
export async function zstdDeclaredSize(file: string): Promise<number | undefined> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const head = Buffer.alloc(18);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < 6 || !head.subarray(0, 4).equals(ZSTD_MAGIC)) return undefined;
    const descriptor = head[4]!;
    const fcsFlag = descriptor >> 6;
    const singleSegment = (descriptor >> 5) & 1;
    const dictFlag = descriptor & 3;
    const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
    if (fcsBytes === 0) return undefined;
    const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
    if (at + fcsBytes > bytesRead) return undefined;
    if (fcsBytes === 1) return head.readUInt8(at);
    if (fcsBytes === 2) return head.readUInt16LE(at) + 256;
    if (fcsBytes === 4) return head.readUInt32LE(at);
    return Number(head.readBigUInt64LE(at));
  } finally {
    await fh.close();
  }
}

/**
 * Decompresses `src` into `dest` with Debian's `zstd` tool (streaming, bounded memory). With a bound, the
 * kernel stops the tool at that size (RLIMIT_FSIZE through prlimit): a bomb never writes past it.
 */
export async function decompressZstd(
  src: string,
  dest: string,
  opts: { signal?: AbortSignal; href?: string; bound?: ByteBound } = {},
): Promise<void> {
  const zstd = ['zstd', '-d', '-q', '-f', '--no-progress', '-o', dest, src];
  const [cmd, args] = opts.bound
    ? ['prlimit', [`--fsize=${opts.bound.bytes}`, '--', ...zstd]]
    : ['zstd', zstd.slice(1)];
  try {
    const run = await runTool(cmd, args, { signal: opts.signal });
    if (run.code !== 0) {
      const size = (await fs.promises.stat(dest).catch(() => undefined))?.size ?? 0;
      if (opts.bound && (run.signal === 'SIGXFSZ' || run.code === 153 || size >= opts.bound.bytes)) {
        throw opts.bound.error(Math.max(size, opts.bound.bytes) + 1);
      }
      throw new InvalidImage(`zstd could not decompress the image: ${run.stderr || `exit ${run.code}`}`, {
        href: opts.href,
      });
    }
  } catch (err) {
    await fs.promises.rm(dest, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidImage(`the image is zstd-compressed but ${cmd} is not installed`, {
        href: opts.href,
      });
    }
    throw err;
  }
}
