import * as fs from 'node:fs';
import { InvalidImage } from '@imagecache/errors';
import { runTool } from './run-tool';

export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** True when the file starts with the zstd frame magic (spec.md §4). */
export async function isZstd(file: string): Promise<boolean> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(ZSTD_MAGIC);
  } finally {
    await fh.close();
  }
}

/** Decompresses `src` into `dest` with Debian's `zstd` tool (streaming, bounded memory). */
export async function decompressZstd(
  src: string,
  dest: string,
  opts: { signal?: AbortSignal; href?: string } = {},
): Promise<void> {
  try {
    const run = await runTool('zstd', ['-d', '-q', '-f', '--no-progress', '-o', dest, src], {
      signal: opts.signal,
    });
    if (run.code !== 0) {
      throw new InvalidImage(`zstd could not decompress the image: ${run.stderr || `exit ${run.code}`}`, {
        href: opts.href,
      });
    }
  } catch (err) {
    await fs.promises.rm(dest, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidImage('the image is zstd-compressed but the zstd tool is not installed', {
        href: opts.href,
      });
    }
    throw err;
  }
}
