import type { ChecksumAlgo } from '@imagecache/checksum';
import type { MasterIdentity } from './master-identity';
import type { PlaceMethod } from './place-file';

export type FetchStage =
  | 'resolve'
  | 'wait'
  | 'download'
  | 'verify'
  | 'decompress'
  | 'inspect'
  | 'convert'
  | 'publish'
  | 'link'
  | 'evict';

export interface FetchProgress {
  stage: FetchStage;
  bytes?: number;
  totalBytes?: number;
}

/** What fetchImage returns (spec.md §2.10). */
export interface FetchResult {
  /** No download was needed. */
  cacheHit: boolean;
  /** The master now behind `destPath`; undefined for sources that are never cached. */
  masterPath?: string;
  destPath: string;
  /** How the destination was made: a hard link, or a copy (another filesystem). */
  placedBy: PlaceMethod | 'already';
  /** Detected format (undefined for caches that don't inspect, and for masters adopted from Ironic). */
  format?: string;
  virtualSize?: number;
  /** Bytes of the image at the destination. */
  size: number;
  converted: boolean;
  /** Digest of the bytes as downloaded; on a hit, the one recorded at download time if any. */
  checksum?: { algo: ChecksumAlgo; value: string };
  bytesDownloaded: number;
  /** The fleet's host the image was taken from (absent: the origin, or a hit). */
  peer?: string;
  /** Milliseconds spent per stage, and in all. */
  durations: Partial<Record<FetchStage, number>> & { total: number };
}

/** What the engine remembers of a master beside it, so a hit can answer like a miss. */
export interface MasterMeta {
  href: string;
  checksum: { algo: ChecksumAlgo; value: string };
  size: number;
  format?: string;
  virtualSize?: number;
  converted: boolean;
  /**
   * The master is the download decompressed (zstd): `checksum` covers the bytes downloaded, not the master's.
   * Absent in metadata written before it was recorded (then unknown).
   */
  decompressed?: boolean;
  fetchedAt: string;
  /** The master file as published; a hit serves it only while it still matches (absent: not yet verified). */
  identity?: MasterIdentity;
  /** With a fleet: sha256 of the master file, and the origin validator it was fetched under (its identity). */
  sha256?: string;
  validator?: string;
}
