import { ImageChecksumAlgorithmFailure, OperationAborted } from '@imagecache/errors';
import { open } from 'node:fs/promises';
import { isSharedArrayBuffer } from 'node:util/types';
import { CHECKSUM_ALGOS } from './algorithms';
import type { ChecksumAlgo } from './types';
import type { IncrementalHasher } from './inline-hasher';
import { acquireWorker, HashChannel } from './worker-pool';

/** A Buffer over a new SharedArrayBuffer: chunks on it reach the hashing thread without a copy. */
export function allocSharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

type State = 'open' | 'finished' | 'destroyed';

/**
 * An incremental hash computed on a worker thread, so hashing overlaps the caller's socket reads and file writes.
 *
 * - `update()` queues a chunk; chunks are hashed in the order queued. It resolves once the worker has hashed the
 *   chunk: only then may the caller reuse the chunk's memory. Keep a few updates in flight (a small ring of blocks)
 *   rather than awaiting each one before reading the next.
 * - Pass chunks on a SharedArrayBuffer (see allocSharedBuffer) of a few MiB: they are hashed in place, zero-copy.
 *   Any other chunk is copied once into a transferable buffer (cheap next to hashing, but not free); tiny chunks
 *   pay a message each, so batch them.
 * - A failure (worker error or death) rejects the pending and later updates and digest(). The promises update()
 *   returns are marked handled, so an update nobody awaits can't crash the process: digest() reports the failure.
 * - The hashing threads are a pool shared by all hashers (at most 2 by default); they never keep the process alive
 *   once nothing is awaited.
 */
export class StreamHasher implements IncrementalHasher {
  readonly algo: ChecksumAlgo;
  private readonly channel: HashChannel;
  private state: State = 'open';
  private bytes = 0;

  constructor(algo: ChecksumAlgo) {
    if (!CHECKSUM_ALGOS.includes(algo)) {
      throw new ImageChecksumAlgorithmFailure(`unsupported hash algorithm '${String(algo)}'`, { algo });
    }
    this.algo = algo;
    this.channel = new HashChannel(acquireWorker(), algo);
  }

  /** Bytes queued so far. */
  get bytesQueued(): number {
    return this.bytes;
  }

  /** Queue a chunk for hashing in order. Resolves when the worker has hashed it (so the caller may reuse it). */
  update(chunk: Uint8Array): Promise<void> {
    if (this.state !== 'open') return handled(Promise.reject(new Error(`StreamHasher is ${this.state}`)));
    this.bytes += chunk.byteLength;
    let p: Promise<void>;
    if (isSharedArrayBuffer(chunk.buffer)) {
      p = this.channel.update(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } else {
      const copy = new ArrayBuffer(chunk.byteLength);
      new Uint8Array(copy).set(chunk);
      p = this.channel.update(copy, 0, chunk.byteLength);
    }
    return handled(p);
  }

  /** Hex digest (lower case) of everything updated so far; the hasher is finished afterwards. */
  digest(): Promise<string> {
    if (this.state !== 'open') return Promise.reject(new Error(`StreamHasher is ${this.state}`));
    this.state = 'finished';
    return this.channel.digest();
  }

  /** Releases it without a digest (on error paths). Never throws. Updates already queued still settle. */
  destroy(): void {
    if (this.state !== 'open') return;
    this.state = 'destroyed';
    try {
      this.channel.destroy();
    } catch {
      // never throws
    }
  }
}

function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

export interface HashFileOptions {
  signal?: AbortSignal;
  /** Bytes per read (default 4 MiB). */
  blockSize?: number;
  /** Blocks in flight (default 4). */
  blocks?: number;
}

/**
 * Hashes a file with a StreamHasher, reading it in SharedArrayBuffer blocks while earlier blocks are hashed:
 * the pattern a download loop should follow. Resolves with the lower-case hex digest.
 */
export async function hashFile(
  path: string,
  algo: ChecksumAlgo,
  opts: HashFileOptions = {},
): Promise<string> {
  const blockSize = opts.blockSize ?? 4 * 1024 * 1024;
  const count = Math.max(1, opts.blocks ?? 4);
  const hasher = new StreamHasher(algo);
  const blocks = Array.from({ length: count }, () => allocSharedBuffer(blockSize));
  const inFlight: (Promise<void> | undefined)[] = [];
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, 'r');
    let position = 0;
    for (let i = 0; ; i++) {
      if (opts.signal?.aborted) throw new OperationAborted(`hashing ${path} was aborted`);
      const slot = i % count;
      await inFlight[slot];
      const block = blocks[slot] as Buffer;
      const { bytesRead } = await fh.read(block, 0, blockSize, position);
      if (bytesRead === 0) break;
      inFlight[slot] = hasher.update(block.subarray(0, bytesRead));
      position += bytesRead;
    }
    return await hasher.digest();
  } catch (err) {
    hasher.destroy();
    throw err;
  } finally {
    await fh?.close();
  }
}
