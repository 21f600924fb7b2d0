import './use-code-cache'; // first: what follows compiles with the build's code cache
export { ImageCache } from './image-cache';
export type { FetchOptions, MasterEntry } from './image-cache';
export type { CacheHandle, HostHandle, CacheFetchOptions, CacheListing, CallOptions } from './cache-handle';
export { CacheRegistry } from './cache-registry';
export type { ImageRequest, SpaceReport } from './cache-registry';
export type { CleanUpResult, RemovedMaster } from './clean-up';
export type {
  CacheEventMap,
  CacheEventName,
  CacheListener,
  CacheUsage,
  EvictEvent,
  FetchEvent,
} from './cache-events';
export type { ImageCacheOptions } from './options';
export {
  DEFAULT_CACHE_SIZE,
  DEFAULT_CACHE_TTL,
  DEFAULT_DOWNLOAD_CONCURRENCY,
  defaultLimiter,
} from './options';
export type { FetchResult, FetchProgress, FetchStage, MasterMeta } from './result';
export { masterName, CONVERTED_SUFFIX } from './master-name';
export { Semaphore } from './semaphore';
export { HostDownloadSlots } from './host-slots';
export type { DownloadLimiter } from './host-slots';
export { startSweeper } from './sweeper';
export { freeSpace } from './disk-space';
export type { Logger } from './logger';
export { silentLogger } from './logger';
export { codeCacheStats } from './code-cache';
export type { CodeCacheStats } from './code-cache';
export { prepareImage } from './prepare-image';
export type { PrepareOptions, PreparedImage } from './prepare-image';
export { DestinationPolicy } from './destination-policy';
export type { DestinationRules, CheckedDestination } from './destination-policy';
export type { MasterIdentity } from './master-identity';
export { identityOf, sameIdentity } from './master-identity';
export { isMasterName } from './master-name';
export { CacheFolder, WORK_DIR, LOCK_DIR, META_DIR } from './cache-folder';
export { publishedMasters } from './fleet';
export type { Fleet, FleetClaim, FleetEntry, ImageIdentity, PeerFailure, PeerOffer } from './fleet';
