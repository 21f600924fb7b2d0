import type { SourceOptions } from '@imagecache/sources';
import type { Fleet } from './fleet';
import type { Logger } from './logger';
import type { DownloadLimiter } from './host-slots';
import { Semaphore } from './semaphore';

const GiB = 1024 ** 3;

/** Options of one cache (one master folder). Defaults are spec.md §10's. */
export interface ImageCacheOptions {
  /** Absolute folder that holds the masters; created when missing. */
  masterDir: string;
  /** A name for logs, metrics and the registry. Default `default`. */
  name?: string;
  /** Bytes the masters may take before the oldest unused go. Default 20 GiB. */
  cacheSize?: number;
  /** Seconds after its last use a master is evicted. Default 7 days. */
  cacheTtl?: number;
  /** Convert to raw (masters get `.converted`). Default true. */
  forceRaw?: boolean;
  /** Inspect every image's format. Default true; false for kernel/ramdisk/ISO caches. */
  validate?: boolean;
  /** Higher is cleaned first when space is needed across caches. Default 50. */
  priority?: number;
  /** How hrefs are resolved and fetched (file:// roots, http timeouts, TLS, auth). */
  sources?: SourceOptions;
  /** Refuse md5 checksums. Default false. */
  disallowMd5?: boolean;
  /** Attempts after the first for a transient download failure, each resuming with Range. Default 3. */
  downloadRetries?: number;
  /** First back-off between download attempts, ms (grows linearly). Default 1000. */
  retryDelayMs?: number;
  /**
   * Shared by every cache of a process: at most this many downloads at once. Default 20 per process; a
   * HostDownloadSlots makes the limit hold across the processes of a host.
   */
  limiter?: DownloadLimiter;
  /** Formats accepted (raw implies gpt). Default raw, gpt, qcow2, iso. */
  permittedFormats?: readonly string[];
  /** Decompress downloads that start with the zstd magic, after the checksum. Default true. */
  zstd?: boolean;
  /**
   * Write an image over 64 MiB (or of unknown size), and qemu-img's output, straight to the disk (O_DIRECT) where
   * the filesystem takes it: a fraction of the CPU of filling the page cache, and steady where that cost swings
   * with the kernel's free memory. An image about to be converted or decompressed still goes through the page
   * cache, where the next stage reads it. False suits a cache on a disk much slower than the host's network
   * (spinning disks). Default true.
   */
  directIo?: boolean;
  /** Room asked before a conversion when the virtual size can't be had: file size × this. Default 2.0. */
  growthFactor?: number;
  /** Address-space cap of qemu-img, bytes; 0 = none. Default 2 GiB. */
  qemuImgMemoryCap?: number;
  /** Create a missing destination parent folder instead of refusing it (under allowed roots only). Default false. */
  createDestDirs?: boolean;
  /**
   * Where destinations may be written (spec.md §5). Whatever this says, never inside a master folder of this
   * cache or of its registry's caches. `allowedRoots` absent: any other folder.
   */
  destinations?: { allowedRoots?: readonly string[] };
  logger?: Logger;
  /**
   * The fleet this host shares masters with (issue #12): a miss takes a verified master from a peer first, and
   * one host at a time downloads an image from the origin. Absent: every miss goes to the origin.
   */
  fleet?: Fleet;
}

export const DEFAULT_CACHE_SIZE = 20 * GiB;
export const DEFAULT_CACHE_TTL = 7 * 24 * 3600;
export const DEFAULT_DOWNLOAD_CONCURRENCY = 20;

let processLimiter: Semaphore | undefined;
/** The process-wide download limiter (spec.md §3: downloadConcurrency per host). */
export function defaultLimiter(): Semaphore {
  processLimiter ??= new Semaphore(DEFAULT_DOWNLOAD_CONCURRENCY);
  return processLimiter;
}
