import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import {
  allocSharedBuffer,
  InlineHasher,
  startHashWorker,
  StreamHasher,
  type ChecksumAlgo,
  type IncrementalHasher,
} from '@imagecache/checksum';
import { ImageDownloadFailed, ImageCacheError, OperationAborted } from '@imagecache/errors';
import type { ByteBound } from '@imagecache/formats';
import { isBlockReadable, type ByteSink, type ImageSource } from '@imagecache/sources';
import type { Logger } from './logger';

/**
 * Socket chunks are gathered into blocks this big before one write and one hash update each. Small, because each
 * block is fresh memory and a process pays for the first touch of every page: on this project's VMs touching 16 MiB
 * of new memory took 50 ms and 1 MiB 5 ms, more than receiving, writing and hashing those bytes. 1 MiB writes are
 * as cheap per byte as 4 MiB ones.
 */
const BLOCK_SIZE = 1 << 20;
/** Blocks of an image known to be small (hashed inline): its whole ring is 1 MiB. */
const SMALL_BLOCK_SIZE = 256 << 10;
/** Blocks in flight at once: bounds memory (4 MiB, 1 MiB for a small image) whatever the image size. */
const POOL_SIZE = 4;
/**
 * Images up to this size (announced) are hashed on the main thread: a hashing thread's start-up costs more than
 * hashing them, and every fresh process's first fetch would pay it. Larger ones hash beside the transfer. Hashed
 * on the main thread, a 256 MiB miss used about 0.06 s less user CPU (no thread to boot) but, whenever the page
 * cache took writes quickly, its download stage took 0.45-0.52 s instead of 0.33-0.35 s (medians of two series
 * of 8 alternating runs): receiving and hashing on one thread was then the bottleneck, and no CPU was saved.
 */
export const INLINE_HASH_MAX_BYTES = 64 << 20;

/**
 * A download of `knownSize` bytes is coming: starts now what it will need that takes long to start (the hashing
 * thread of a big image), so that it is ready by the first bytes.
 */
export function prepareDownload(knownSize: number | undefined): void {
  if (knownSize === undefined || knownSize > INLINE_HASH_MAX_BYTES) startHashWorker();
}

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
 * Streams an image into `file`, hashing it on the way off the main thread: socket reads, file writes
 * (libuv pool) and hashing (worker thread) overlap, and each byte is read once. A partial `file` left by an
 * earlier attempt (or a crashed process) for the same href is continued with Range + If-Range.
 */
export async function downloadTo(
  source: ImageSource,
  file: string,
  opts: DownloadOptions,
): Promise<Downloaded> {
  const statePath = file + '.state.json';
  const previous = await readState(statePath);
  const algos = [...new Set(opts.algos)].sort().join(',');
  const resumable = previous?.href === source.safeHref && previous.algos === algos && previous.validator;
  const fh = await fs.promises.open(
    file,
    resumable ? fs.constants.O_RDWR | fs.constants.O_CREAT : 'w',
    0o644,
  );
  const small = opts.knownSize !== undefined && opts.knownSize <= INLINE_HASH_MAX_BYTES;
  let hasher = new Hashers(opts.algos, small);
  let size = 0;
  let bytesDownloaded = 0;
  let validator = resumable ? previous.validator : undefined;
  let attempt = 0;
  try {
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
          await writeState(statePath, { href: source.safeHref, algos, validator });
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
        const pipe = new BlockPipe(fh, hasher, size, small ? SMALL_BLOCK_SIZE : BLOCK_SIZE, (n) => {
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
        if (!e.retryable || e instanceof OperationAborted || attempt > opts.retries) throw e;
        opts.logger.warn(
          { href: source.safeHref, attempt, resumeAt: size, reason: e.message },
          'download interrupted, resuming',
        );
        await delay(opts.retryDelayMs * attempt, opts.signal);
      }
    }
  } catch (err) {
    hasher.destroy();
    throw err;
  } finally {
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

/** One hasher per algorithm, fed the same blocks (each on its own thread, or inline for small images). */
class Hashers {
  private readonly list: IncrementalHasher[];

  constructor(
    readonly algos: readonly ChecksumAlgo[],
    /** Hash on the calling thread, as bytes arrive (see BlockPipe.commit). */
    readonly inline: boolean,
  ) {
    this.list = [...new Set(algos)].map((a) => (inline ? new InlineHasher(a) : new StreamHasher(a)));
  }

  /** A fresh set of the same kind (a download that starts over). */
  renew(): Hashers {
    this.destroy();
    return new Hashers(this.algos, this.inline);
  }

  async update(chunk: Uint8Array): Promise<void> {
    await Promise.all(this.list.map((h) => h.update(chunk)));
  }

  /** Inline hashers only: hashes `chunk` now (no promise per read). */
  updateNow(chunk: Uint8Array): void {
    for (const h of this.list) void h.update(chunk);
  }

  async digests(): Promise<Partial<Record<ChecksumAlgo, string>>> {
    const values = await Promise.all(this.list.map((h) => h.digest()));
    return Object.fromEntries(this.list.map((h, i) => [h.algo, values[i]]));
  }

  destroy(): void {
    for (const h of this.list) h.destroy();
  }
}

/** Feeds the bytes already in the file to the hasher (read once, in shared blocks); returns their count. */
async function hashExisting(fh: fs.promises.FileHandle, hasher: Hashers): Promise<number> {
  const blocks = [allocSharedBuffer(BLOCK_SIZE), allocSharedBuffer(BLOCK_SIZE)];
  const pending: Promise<void>[] = [];
  let position = 0;
  for (let i = 0; ; i++) {
    const block = blocks[i % 2]!;
    if (pending.length === 2) await pending.shift();
    const { bytesRead } = await fh.read(block, 0, BLOCK_SIZE, position);
    if (bytesRead === 0) break;
    pending.push(hasher.update(block.subarray(0, bytesRead)));
    position += bytesRead;
  }
  await Promise.all(pending);
  return position;
}

async function readState(file: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(file, 'utf8')) as PartialState;
  } catch {
    return undefined;
  }
}

async function writeState(file: string, state: PartialState): Promise<void> {
  await fs.promises.writeFile(file, JSON.stringify(state));
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

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

/**
 * Shared-memory blocks the body is received into (a ByteSink: the http receive path reads the socket straight
 * into `region()`; other streams are copied in by `push`). Each full block is written and hashed concurrently;
 * at most POOL_SIZE blocks exist, so memory stays bounded whatever the image size.
 */
class BlockPipe implements ByteSink {
  private allocated = 0;
  private readonly free: Buffer[] = [];
  private lastWrite: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private block?: Buffer;
  private fill = 0;
  private failure?: unknown;
  private waiter?: () => void;
  /** Called once when a write or hash fails (stops the feeding stream). */
  onFailure?: (err: unknown) => void;

  constructor(
    private readonly fh: fs.promises.FileHandle,
    private readonly hasher: Hashers,
    /** File offset of the next byte. */
    public position: number,
    private readonly blockSize: number,
    /** Bytes were added (may throw to stop the download: a limit passed). */
    private readonly onAdvance: (n: number) => void,
  ) {
    this.block = this.take();
  }

  region(): Uint8Array | undefined {
    if (this.failure !== undefined || !this.block) return undefined;
    return this.block.subarray(this.fill);
  }

  commit(n: number): void {
    // Inline hashing runs as the bytes come, in the gaps between socket reads, rather than a block at a time.
    if (this.hasher.inline) this.hasher.updateNow(this.block!.subarray(this.fill, this.fill + n));
    this.fill += n;
    this.position += n;
    if (this.fill === this.blockSize) this.flush();
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

  private take(): Buffer | undefined {
    const b = this.free.pop();
    if (b) return b;
    if (this.allocated >= POOL_SIZE) return undefined;
    this.allocated++;
    return allocSharedBuffer(this.blockSize);
  }

  private flush(): void {
    const block = this.block!;
    const len = this.fill;
    const at = this.position - len;
    // Writes go one at a time, in order (concurrent writes to one file cost the kernel more than they
    // overlap), one block each: gathering the blocks that filled meanwhile into one writev made half the writes
    // but more system time here (median 0.31 s against 0.24 s for 256 MiB, 12 alternating runs). Hashing runs
    // beside them on its own thread.
    const written = this.lastWrite.then(() => writeAll(this.fh, block, len, at));
    this.lastWrite = written.then(
      () => undefined,
      () => undefined,
    );
    const hashed = this.hasher.inline ? undefined : this.hasher.update(block.subarray(0, len));
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
    this.pending.add(job);
    this.fill = 0;
    this.block = this.take();
  }
}

/**
 * Writes `len` bytes of `block` at `at`. A regular file takes them all unless the disk fills: a short write is
 * continued (and then fails) rather than leaving a hole a last block would not be noticed by.
 */
async function writeAll(fh: fs.promises.FileHandle, block: Buffer, len: number, at: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await fh.write(block, done, len - done, at + done);
    if (bytesWritten === 0)
      throw Object.assign(new Error('write made no progress'), { code: 'EIO', syscall: 'write' });
    done += bytesWritten;
  }
}
