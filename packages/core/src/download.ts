import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import {
  allocSharedBuffer,
  InlineHasher,
  StreamHasher,
  type ChecksumAlgo,
  type IncrementalHasher,
} from '@imagecache/checksum';
import { ImageDownloadFailed, ImageCacheError, OperationAborted } from '@imagecache/errors';
import type { ByteBound } from '@imagecache/formats';
import { isBlockReadable, type ByteSink, type ImageSource } from '@imagecache/sources';
import { allocBlocks, type Blocks } from './block-memory';
import { BlockWriter, DIRECT_ALIGNMENT } from './block-writer';
import type { Logger } from './logger';
import { readJsonOrUndefined } from './metadata-io';

/**
 * Socket chunks are gathered into blocks this big before one write each. Small, because each block is fresh
 * memory and a process pays for the first touch of every page: on this project's VMs touching 16 MiB of new
 * memory took 50 ms and 1 MiB 5 ms, more than receiving, writing and hashing those bytes. 1 MiB writes are as
 * cheap per byte as 4 MiB ones, straight to the disk or not.
 */
const BLOCK_SIZE = 1 << 20;
/** Blocks of a small image: its whole ring is 1 MiB. */
const SMALL_BLOCK_SIZE = 256 << 10;
/** Blocks in flight at once: bounds memory (4 MiB, 1 MiB for a small image) whatever the image size. */
const POOL_SIZE = 4;
/**
 * Images announced up to this size are small: smaller blocks, written through the page cache (where their
 * reader finds them; a disk round trip per block would cost more than the copy) on this thread (see
 * BlockWriter's `inline`). Bigger ones, or of unknown size, are written straight to the disk where the
 * filesystem allows.
 */
const SMALL_IMAGE_MAX_BYTES = 64 << 20;

export interface DownloadOptions {
  /** Digests to compute while downloading (the caller's checksum, and the one the source vouches for). */
  algos: readonly ChecksumAlgo[];
  signal?: AbortSignal;
  /** Attempts after the first when the failure is transient; each resumes with Range where possible. */
  retries: number;
  retryDelayMs: number;
  /** Size the source announced in show(), if any: a partial file that long needs no request at all... */
  knownSize?: number;
  /** ...when show()'s validator is the one the partial was downloaded under. */
  validator?: string;
  onProgress?: (bytes: number, totalBytes: number | undefined) => void;
  /** Most bytes the file may hold: a body announced or growing past it is stopped with `bound.error`. */
  bound?: ByteBound;
  /**
   * The next stage reads the image whole right away (conversion, decompression): it is written through the
   * page cache, where that stage finds it. `true`: known before the download (the announced format), and a big
   * image is then hashed on a hashing thread, since writes into the page cache, when quick, leave the main
   * thread the bottleneck. A function: asked about the first bytes.
   */
  readBack?: boolean | ((head: Uint8Array) => boolean);
  /** Write a big image straight to the disk where the filesystem takes it (see BlockWriter). Default true. */
  direct?: boolean;
  logger: Logger;
}

export interface Downloaded {
  /** Bytes in the file. */
  size: number;
  /** Hex digests of those bytes, one per algorithm asked. */
  digests: Partial<Record<ChecksumAlgo, string>>;
  /** Bytes that crossed the network (more than `size` when an attempt had to start over). */
  bytesDownloaded: number;
  /** Bytes taken over from a partial download of an earlier attempt or process. */
  resumedFrom: number;
  attempts: number;
}

/** What a partial download must match to be continued (written beside it before the first byte). */
interface PartialState {
  href: string;
  algos: string;
  validator?: string;
}

/**
 * Streams an image into `file`, hashing it as its bytes arrive: each byte is read once, hashed on this thread
 * between socket reads while earlier blocks are written (libuv pool). A partial `file` left by an earlier
 * attempt (or a crashed process) for the same href is continued with Range + If-Range.
 *
 * Hashing here rather than on a hashing thread: booting that thread (a whole Node isolate) cost 55-70 ms of CPU
 * and 13 MiB of fresh memory per process, more than it saved once writes straight to the disk stopped competing
 * for the CPU (a 256 MiB miss: 0.39-0.41 s of CPU against 0.49-0.50 s, 3 rounds beside Ironic; 1 GiB: 1.38-1.42 s
 * against 1.58-1.68 s, no slower). A big image known to be read back is the exception (see `readBack`).
 */
export async function downloadTo(
  source: ImageSource,
  file: string,
  opts: DownloadOptions,
): Promise<Downloaded> {
  const statePath = file + '.state.json';
  const previous = readJsonOrUndefined<PartialState>(statePath);
  const algos = [...new Set(opts.algos)].sort().join(',');
  const resumable = previous?.href === source.safeHref && previous.algos === algos && previous.validator;
  const fh = await fs.promises.open(
    file,
    resumable ? fs.constants.O_RDWR | fs.constants.O_CREAT : 'w',
    0o644,
  );
  const small = opts.knownSize !== undefined && opts.knownSize <= SMALL_IMAGE_MAX_BYTES;
  const readBack = opts.readBack === true;
  let hasher = new Hashers(opts.algos, readBack && !small);
  let writer: BlockWriter | undefined;
  let size = 0;
  let bytesDownloaded = 0;
  let validator = resumable ? previous.validator : undefined;
  let attempt = 0;
  try {
    writer = await BlockWriter.open(
      fh,
      file,
      small ? 'inline' : (opts.direct ?? true) && !readBack ? 'direct' : 'buffered',
      typeof opts.readBack === 'function' ? opts.readBack : undefined,
    );
    if (resumable) size = await hashExisting(fh, hasher);
    const resumedFrom = size;
    if (size > 0)
      opts.logger.info({ href: source.safeHref, resumeAt: size }, 'continuing a partial download');
    // A partial as long as the image needs no request, if the image is still the one it came from.
    if (opts.knownSize !== undefined && size === opts.knownSize && size > 0 && opts.validator === validator) {
      return { size, digests: await hasher.digests(), bytesDownloaded, resumedFrom, attempts: 0 };
    }
    for (;;) {
      attempt++;
      /** Set when the body passed the bound: the error the attempt ends with, whatever the stream says. */
      let over: Error | undefined;
      try {
        const body = await source.open({ signal: opts.signal, offset: size, validator });
        if (validator === undefined || body.start !== size) {
          validator = body.info.validator;
          writeState(statePath, { href: source.safeHref, algos, validator });
        }
        if (body.start !== size) {
          // The server ignored the Range (or the image changed): start over.
          hasher = hasher.renew();
          await fh.truncate(0);
          size = 0;
        }
        const total = body.totalSize;
        const bound = opts.bound;
        if (bound && total !== undefined && total > bound.bytes) {
          body.stream.destroy();
          throw bound.error(total);
        }
        const pipe = new BlockPipe(writer, hasher, size, small ? SMALL_BLOCK_SIZE : BLOCK_SIZE, (n) => {
          bytesDownloaded += n;
          if (bound && pipe.position > bound.bytes) {
            // Not thrown: this may run inside the source's receive loop, called back from a block's write;
            // ending the stream stops the transfer, and the bound's error is what the attempt ends with.
            if (!over) {
              over = bound.error(pipe.position);
              body.stream.destroy();
            }
            return;
          }
          if (total !== undefined && pipe.position > total) {
            throw new ImageDownloadFailed(`${source.safeHref}: more bytes than the announced ${total}`, {
              href: source.href,
              retryable: false,
            });
          }
          opts.onProgress?.(pipe.position, total);
        });
        const stream = body.stream;
        try {
          if (isBlockReadable(stream)) {
            // The receive path reads the socket straight into the pipe's blocks.
            // The failure itself comes from drain() below; no one listens to the stream's own errors here.
            pipe.onFailure = () => stream.destroy();
            await stream.pipeTo(pipe);
          } else {
            await consume(stream, (chunk) => pipe.push(chunk));
          }
        } finally {
          size = await pipe.drain();
        }
        if (over) throw over;
        if (total !== undefined && size !== total) {
          throw new ImageDownloadFailed(`${source.safeHref}: got ${size} of ${total} bytes`, {
            href: source.href,
          });
        }
        return { size, digests: await hasher.digests(), bytesDownloaded, resumedFrom, attempts: attempt };
      } catch (err) {
        if (over) throw over;
        if (isLocalFsError(err)) throw err; // disk full, I/O error: the caller maps them
        const e = asError(err, source, opts.signal);
        if (!worthRetrying(e, attempt, opts.retries)) throw e;
        opts.logger.warn(
          { href: source.safeHref, attempt, resumeAt: size, reason: e.message },
          'download interrupted, resuming',
        );
        await backOff(opts.retryDelayMs * attempt, opts.signal);
      }
    }
  } catch (err) {
    hasher.destroy();
    throw err;
  } finally {
    await writer?.close();
    await fh.close();
  }
}

/**
 * Feeds a stream's chunks to `onChunk`, pausing the stream only while a returned promise is pending:
 * cheaper per chunk than async iteration, which allocates promises for every chunk.
 */
function consume(stream: Readable, onChunk: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    let pending: Promise<void> | void;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      stream.off('data', onData);
      stream.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      let result: Promise<void> | void;
      try {
        result = onChunk(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      if (result) {
        stream.pause();
        pending = result;
        result.then(() => failed || stream.resume(), fail);
      }
    };
    stream.on('data', onData);
    stream.once('error', fail);
    // The last chunk's promise may still be pending when 'end' comes.
    stream.once('end', () => void Promise.resolve(pending).then(() => failed || resolve(), fail));
  });
}

/** One hasher per algorithm, fed the same bytes: as they come, or a block at a time on hashing threads. */
class Hashers {
  private readonly list: IncrementalHasher[];

  constructor(
    readonly algos: readonly ChecksumAlgo[],
    readonly threaded: boolean,
  ) {
    this.list = [...new Set(algos)].map((a) => (threaded ? new StreamHasher(a) : new InlineHasher(a)));
  }

  /** A fresh set of the same kind (a download that starts over). */
  renew(): Hashers {
    this.destroy();
    return new Hashers(this.algos, this.threaded);
  }

  /** Bytes as they land (inline hashers). */
  update(chunk: Uint8Array): void {
    if (!this.threaded) for (const h of this.list) void h.update(chunk);
  }

  /** A full block (hashing threads): settles once the block's memory may be reused. */
  updateBlock(block: Uint8Array): Promise<unknown> | undefined {
    return this.threaded ? Promise.all(this.list.map((h) => h.update(block))) : undefined;
  }

  async digests(): Promise<Partial<Record<ChecksumAlgo, string>>> {
    const values = await Promise.all(this.list.map((h) => h.digest()));
    return Object.fromEntries(this.list.map((h, i) => [h.algo, values[i]]));
  }

  destroy(): void {
    for (const h of this.list) h.destroy();
  }
}

/** Feeds the bytes already in the file to the hasher; returns their count. */
async function hashExisting(fh: fs.promises.FileHandle, hasher: Hashers): Promise<number> {
  const block = allocSharedBuffer(BLOCK_SIZE);
  let position = 0;
  for (;;) {
    const { bytesRead } = await fh.read(block, 0, BLOCK_SIZE, position);
    if (bytesRead === 0) return position;
    hasher.update(block.subarray(0, bytesRead));
    await hasher.updateBlock(block.subarray(0, bytesRead));
    position += bytesRead;
  }
}

// The partial download's state is a few hundred bytes beside it: written on this thread, as it is read
// (metadata-io.ts).
function writeState(file: string, state: PartialState): void {
  fs.writeFileSync(file, JSON.stringify(state));
}

function asError(err: unknown, source: ImageSource, signal?: AbortSignal): ImageCacheError {
  if (signal?.aborted)
    return new OperationAborted(`download of ${source.safeHref} cancelled`, { href: source.href });
  if (err instanceof ImageCacheError) return err;
  const e = err as NodeJS.ErrnoException;
  return new ImageDownloadFailed(`${source.safeHref}: ${e.message}`, { href: source.href, cause: err });
}

/** An error of our own file (write, truncate), as opposed to one of the source. */
function isLocalFsError(err: unknown): boolean {
  const syscall = (err as NodeJS.ErrnoException | undefined)?.syscall;
  return syscall === 'write' || syscall === 'ftruncate' || syscall === 'open' || syscall === 'close';
}

/** Whether a source's failure on attempt `attempt` (from 1) gets another: a transient one, attempts left. */
export function worthRetrying(err: unknown, attempt: number, retries: number): boolean {
  return (
    err instanceof ImageCacheError &&
    err.retryable &&
    !(err instanceof OperationAborted) &&
    attempt <= retries
  );
}

/** Waits `ms` before an attempt again, or less when `signal` aborts meanwhile. */
export function backOff(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // The listener goes with the timer: one left per attempt would pile up on a long-lived signal.
    const onAbort = () => (clearTimeout(t), resolve());
    const t = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Blocks the body is received into (a ByteSink: the http receive path reads the socket straight into
 * `region()`; other streams are copied in by `push`). Bytes are hashed as they land; each full block is written
 * while the next fills. At most POOL_SIZE blocks exist, so memory stays bounded whatever the image size.
 */
class BlockPipe implements ByteSink {
  private memory?: Blocks;
  private allocated = 0;
  private readonly free: Buffer[] = [];
  private lastWrite: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private block?: Buffer;
  private fill = 0;
  /** Where the current block is full: for a download continued at an odd length, the first block holds only
   * the bytes up to the next page, so that the blocks after it start on one (what O_DIRECT writes need). */
  private end: number;
  private failure?: unknown;
  private waiter?: () => void;
  /** Called once when a write fails (stops the feeding stream). */
  onFailure?: (err: unknown) => void;

  constructor(
    private readonly writer: BlockWriter,
    private readonly hasher: Hashers,
    /** File offset of the next byte. */
    public position: number,
    private readonly blockSize: number,
    /** Bytes were added (may throw to stop the download: a limit passed). */
    private readonly onAdvance: (n: number) => void,
  ) {
    const odd = position % DIRECT_ALIGNMENT;
    this.end = odd ? DIRECT_ALIGNMENT - odd : blockSize;
    this.block = this.take();
  }

  region(): Uint8Array | undefined {
    if (this.failure !== undefined || !this.block) return undefined;
    return this.block.subarray(this.fill, this.end);
  }

  commit(n: number): void {
    // Hashed inline as the bytes come, in the gaps between socket reads, rather than a block at a time.
    this.hasher.update(this.block!.subarray(this.fill, this.fill + n));
    this.fill += n;
    this.position += n;
    if (this.fill === this.end) this.flush();
    this.onAdvance(n);
  }

  waitForRoom(wake: () => void): void {
    if (this.block && this.failure === undefined) wake();
    else this.waiter = wake;
  }

  /** Copies a chunk in; a promise only when it had to wait for a free block (most chunks cost a memcpy). */
  push(chunk: Buffer): Promise<void> | undefined {
    let off = 0;
    while (off < chunk.length) {
      const r = this.region();
      if (!r) {
        if (this.failure !== undefined) return Promise.reject(this.failure);
        const rest = chunk.subarray(off);
        return new Promise<void>((resolve) => this.waitForRoom(resolve)).then(() => this.push(rest));
      }
      const n = Math.min(r.length, chunk.length - off);
      r.set(chunk.subarray(off, off + n));
      off += n;
      this.commit(n);
    }
    return undefined;
  }

  /** Writes what is left, waits for every block, and returns the file offset reached. */
  async drain(): Promise<number> {
    if (this.failure === undefined && this.fill > 0) this.flush();
    await Promise.allSettled([...this.pending]);
    if (this.failure !== undefined) throw this.failure;
    return this.position;
  }

  /** A free block; the ring's memory is reserved by the first, its pages touched only as bytes land. */
  private take(): Buffer | undefined {
    const b = this.free.pop();
    if (b) return b;
    if (this.allocated >= POOL_SIZE) return undefined;
    this.memory ??= allocBlocks(POOL_SIZE, this.blockSize, this.writer.isDirect);
    return this.memory.blocks[this.allocated++];
  }

  private flush(): void {
    const block = this.block!;
    const len = this.fill;
    const at = this.position - len;
    // Writes go one at a time, in order (concurrent writes to one file cost the kernel more than they
    // overlap), one block each: gathering the blocks that filled meanwhile into one writev made half the writes
    // but more system time here (median 0.31 s against 0.24 s for 256 MiB, 12 alternating runs).
    const hashed = this.hasher.updateBlock(block.subarray(0, len));
    const written = this.lastWrite.then(() => this.writer.write(block, len, at, this.memory!.aligned));
    const job: Promise<void> = Promise.all([written, hashed]).then(
      () => {
        this.pending.delete(job);
        this.free.push(block);
        if (!this.block) {
          this.block = this.take();
          const wake = this.waiter;
          this.waiter = undefined;
          wake?.();
        }
      },
      (err: unknown) => {
        this.pending.delete(job);
        if (this.failure !== undefined) return;
        this.failure = err;
        this.onFailure?.(err);
        const wake = this.waiter;
        this.waiter = undefined;
        wake?.();
      },
    );
    this.lastWrite = written.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(job);
    this.fill = 0;
    this.end = this.blockSize;
    this.block = this.take();
  }
}
