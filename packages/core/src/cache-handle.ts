import type { FetchRequestOptions, RequestAuth } from '@imagecache/contract';
import type { SpaceReport } from './cache-registry';
import type { CleanUpResult } from './clean-up';
import type { MasterEntry } from './image-cache';
import type { FetchProgress, FetchResult } from './result';

/** What a caller may pass to any cache, in this process or a host's through the queue. */
export interface CallOptions {
  /** Cancels the call (a remote call cancels its job). */
  signal?: AbortSignal;
}

/** The options of one fetch through a handle: the request's options, its credentials, and the caller's hooks. */
export interface CacheFetchOptions extends FetchRequestOptions, CallOptions {
  /** Credentials for this image only; never logged. */
  auth?: RequestAuth;
  onProgress?: (progress: FetchProgress) => void;
}

/** The masters of one cache, and where they are. */
export interface CacheListing {
  cache: string;
  masterDir: string;
  masters: MasterEntry[];
}

/**
 * One cache, wherever it runs: `ImageCache` in this process, `RemoteCache` (@imagecache/queue) through a host's
 * workers. Both answer with the same types, so a caller (a CLI verb) calls a handle without knowing which.
 */
export interface CacheHandle {
  readonly name: string;
  /** Makes `href` appear at `dest` (spec.md §2). */
  fetchImage(href: string, dest: string, opts?: CacheFetchOptions): Promise<FetchResult>;
  /** Evicts masters by TTL, then by size, or until `amount` bytes are freed (spec.md §8). */
  cleanUp(amount?: number, opts?: CallOptions): Promise<CleanUpResult>;
  /** The masters, least recently used first; files that are not masters are marked foreign. */
  listing(opts?: CallOptions): Promise<CacheListing>;
}

/** A host's caches, wherever they run: `Host` (@imagecache/host) here, `RemoteHost` (@imagecache/queue) there. */
export interface HostHandle {
  /** The cache named, or the host's default one (a UsageError names the known ones when there is none). */
  cache(name?: string): CacheHandle;
  /** The caches this handle works on: the configuration's here, the ones named by the caller there. */
  readonly caches: readonly CacheHandle[];
  /** Frees room for the images' download sizes in `directory`, the host's caches by priority (spec.md §8). */
  cleanUpCaches(
    directory: string,
    images: readonly { href: string; auth?: RequestAuth }[],
    opts?: CallOptions,
  ): Promise<SpaceReport>;
}
