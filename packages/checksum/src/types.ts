export type ChecksumAlgo = 'md5' | 'sha256' | 'sha512';

/** A checksum the downloaded bytes must match. */
export interface ExpectedChecksum {
  algo: ChecksumAlgo;
  /** Lower-case hex. */
  value: string;
}
