import { ImageChecksumAlgorithmFailure } from '@imagecache/errors';
import type { ChecksumAlgo } from './types';

/** The algorithms imagecache verifies, strongest first. */
export const CHECKSUM_ALGOS: readonly ChecksumAlgo[] = ['sha512', 'sha256', 'md5'];

/** Hex digits of each algorithm's digest. */
export const HEX_LENGTH: Readonly<Record<ChecksumAlgo, number>> = { md5: 32, sha256: 64, sha512: 128 };

const ALIASES: Readonly<Record<string, ChecksumAlgo>> = {
  md5: 'md5',
  sha256: 'sha256',
  sha2256: 'sha256', // OpenSSL 3 prints "SHA2-256(file)= ..."
  sha512: 'sha512',
  sha2512: 'sha512',
};

const HEX = /^[0-9a-f]+$/i;

export function isHex(s: string): boolean {
  return HEX.test(s);
}

/**
 * The canonical algorithm for a name, case-insensitively, ignoring `-`, `_` and spaces
 * (`SHA256`, `sha-256`, `SHA2-256` all give `sha256`); undefined when unknown.
 */
export function lookupAlgo(name: string): ChecksumAlgo | undefined {
  const key = name
    .trim()
    .toLowerCase()
    .replace(/[-_\s]/g, '');
  return Object.prototype.hasOwnProperty.call(ALIASES, key) ? ALIASES[key] : undefined;
}

/** Like lookupAlgo, but an unknown name throws ImageChecksumAlgorithmFailure. */
export function normalizeAlgo(name: string, details: Record<string, unknown> = {}): ChecksumAlgo {
  const algo = lookupAlgo(name);
  if (algo === undefined) {
    throw new ImageChecksumAlgorithmFailure(
      `unsupported checksum algorithm '${name}' (supported: md5, sha256, sha512)`,
      { algo: name, ...details },
    );
  }
  return algo;
}

/** The algorithm whose digest has this many hex digits, if any. */
export function algoForLength(length: number): ChecksumAlgo | undefined {
  return CHECKSUM_ALGOS.find((a) => HEX_LENGTH[a] === length);
}

/** Rank for "strongest first" choices: higher is stronger. */
export function strength(algo: ChecksumAlgo): number {
  return CHECKSUM_ALGOS.length - CHECKSUM_ALGOS.indexOf(algo);
}
