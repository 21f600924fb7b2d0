import { createHash, type Hash } from 'node:crypto';
import { ImageChecksumAlgorithmFailure } from '@imagecache/errors';
import { CHECKSUM_ALGOS } from './algorithms';
import type { ChecksumAlgo } from './types';

/** What StreamHasher and InlineHasher share: incremental updates, a hex digest, an early release. */
export interface IncrementalHasher {
  readonly algo: ChecksumAlgo;
  update(chunk: Uint8Array): Promise<void>;
  digest(): Promise<string>;
  destroy(): void;
}

/**
 * Hashes on the calling thread. For small images: starting a hashing thread costs more (tens of ms, paid by
 * every fresh process's first fetch) than hashing a few MiB here (SHA-256 runs at about 2 GB/s with SHA-NI).
 * Same contract as StreamHasher; updates are done when they return.
 */
export class InlineHasher implements IncrementalHasher {
  readonly algo: ChecksumAlgo;
  private hash?: Hash;

  constructor(algo: ChecksumAlgo) {
    if (!CHECKSUM_ALGOS.includes(algo)) {
      throw new ImageChecksumAlgorithmFailure(`unsupported hash algorithm '${String(algo)}'`, { algo });
    }
    this.algo = algo;
    this.hash = createHash(algo);
  }

  update(chunk: Uint8Array): Promise<void> {
    if (!this.hash) return Promise.reject(new Error('InlineHasher is finished'));
    this.hash.update(chunk);
    return Promise.resolve();
  }

  digest(): Promise<string> {
    const hash = this.hash;
    if (!hash) return Promise.reject(new Error('InlineHasher is finished'));
    this.hash = undefined;
    return Promise.resolve(hash.digest('hex'));
  }

  destroy(): void {
    this.hash = undefined;
  }
}
