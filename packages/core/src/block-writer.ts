import * as fs from 'node:fs';

/** What O_DIRECT asks of a write's memory, offset and length on the filesystems we meet (a page: the strictest). */
export const DIRECT_ALIGNMENT = 4096;

/**
 * Writes a download's blocks into its file, one call per block, in the order given.
 *
 * Opened `direct`, the aligned part of each block goes straight to the disk (O_DIRECT): no page-cache page is
 * allocated, filled and written back for it. On this project's VMs, filling fresh page-cache pages was most of a
 * big miss's CPU and all of its noise (a 1 GiB buffered write took 0.7-2.8 s of system time, depending on what
 * the kernel had free; straight to the disk, 0.14 s). What isn't aligned (a last block's tail, a partial
 * download continued at an odd length) goes through the page cache, as does everything when the filesystem or
 * the memory refuses O_DIRECT (some network filesystems: EINVAL), from that write on. So does an image the next
 * stage reads whole right away (decompressed or converted: see `readBack`), which finds it in the page cache.
 */
export class BlockWriter {
  private constructor(
    private readonly fh: fs.promises.FileHandle,
    private direct: fs.promises.FileHandle | undefined,
    private readBack: ((head: Uint8Array) => boolean) | undefined,
    private readonly inline = false,
  ) {}

  /**
   * A writer on `fh` (the file's page-cache handle, which the caller keeps and closes); `mode` `direct` asks
   * for O_DIRECT, `inline` writes through the page cache on the calling thread. `readBack`, asked about the
   * first block of a direct download that starts at 0: true keeps the image in the page cache.
   *
   * Inline is for small images: a block of a few hundred KiB is copied into the page cache in well under a
   * millisecond, less than a round trip through libuv's pool costs in wake-ups (a fresh process's first 8 MiB
   * miss: download stage 18-19 ms inline against 25-27 ms through the pool, 8 alternating runs).
   */
  static async open(
    fh: fs.promises.FileHandle,
    file: string,
    mode: 'direct' | 'buffered' | 'inline',
    readBack?: (head: Uint8Array) => boolean,
  ): Promise<BlockWriter> {
    if (mode === 'inline') return new BlockWriter(fh, undefined, undefined, true);
    if (mode === 'buffered' || fs.constants.O_DIRECT === undefined)
      return new BlockWriter(fh, undefined, undefined);
    try {
      const d = await fs.promises.open(file, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
      return new BlockWriter(fh, d, readBack);
    } catch {
      return new BlockWriter(fh, undefined, undefined);
    }
  }

  /** Whether writes still go straight to the disk. */
  get isDirect(): boolean {
    return this.direct !== undefined;
  }

  /**
   * Writes `len` bytes of `block` at `at`. `alignedMemory`: the block starts on a page (see allocBlocks). A
   * short write is continued rather than left as a hole a last block would not be noticed by.
   */
  async write(block: Uint8Array, len: number, at: number, alignedMemory: boolean): Promise<void> {
    let done = 0;
    const readBack = this.readBack;
    this.readBack = undefined;
    if (readBack && at === 0 && readBack(block.subarray(0, len))) await this.stopDirect();
    if (this.direct && alignedMemory && at % DIRECT_ALIGNMENT === 0) {
      const head = len - (len % DIRECT_ALIGNMENT);
      try {
        if (head > 0) done = await writeAll(this.direct, block, 0, head, at);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        await this.stopDirect();
      }
    }
    if (this.inline) writeAllNow(this.fh.fd, block, done, len, at);
    else await writeAll(this.fh, block, done, len, at);
  }

  /** Closes the O_DIRECT handle (the page-cache one is the caller's). */
  async close(): Promise<void> {
    await this.stopDirect();
  }

  private async stopDirect(): Promise<void> {
    const d = this.direct;
    this.direct = undefined;
    await d?.close();
  }
}

/** writeAll on this thread. */
function writeAllNow(fd: number, block: Uint8Array, from: number, to: number, at: number): void {
  for (let done = from; done < to;) {
    const n = fs.writeSync(fd, block, done, to - done, at + done);
    if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO', syscall: 'write' });
    done += n;
  }
}

/** Writes bytes [from, to) of `block` at `at + from`; returns `to`. */
async function writeAll(
  fh: fs.promises.FileHandle,
  block: Uint8Array,
  from: number,
  to: number,
  at: number,
): Promise<number> {
  let done = from;
  while (done < to) {
    const { bytesWritten } = await fh.write(block, done, to - done, at + done);
    if (bytesWritten === 0)
      throw Object.assign(new Error('write made no progress'), { code: 'EIO', syscall: 'write' });
    done += bytesWritten;
  }
  return to;
}
