export type { ChecksumAlgo, ExpectedChecksum } from './types';
export { CHECKSUM_ALGOS, HEX_LENGTH, lookupAlgo, normalizeAlgo } from './algorithms';
export { parseChecksum } from './parse';
export type { ParsedChecksum, ChecksumInput, ChecksumPolicy } from './parse';
export { parseChecksumFile, imageFileName } from './checksum-file';
export type { ChecksumFileOptions } from './checksum-file';
export { StreamHasher, allocSharedBuffer, hashFile } from './stream-hasher';
export { InlineHasher } from './inline-hasher';
export type { IncrementalHasher } from './inline-hasher';
export type { HashFileOptions } from './stream-hasher';
export {
  HashWorkerError,
  configureHashPool,
  prewarmHashWorkers,
  closeHashWorkers,
} from './worker-pool';
export type { HashPoolOptions } from './worker-pool';
export { verifyDigest } from './verify';
