export { ImageCacheClient } from './image-cache-client';
export type {
  ImageCacheClientOptions,
  FetchRequest,
  CleanUpRequest,
  CleanUpCachesRequest,
  JobView,
  RequestAuth,
} from './image-cache-client';
export {
  JOB_NAMES,
  DEFAULT_JOB_OPTIONS,
  FetchJobDataSchema,
  CleanJobDataSchema,
  CleanCachesJobDataSchema,
} from './catalog';
export type { FetchJobData, CleanJobData, CleanCachesJobData, JobProgress, JobSecret } from './catalog';
export { DEFAULT_PREFIX, queueNames, jobIdFor, queueOfJobId, keys } from './names';
export type { JobKind } from './names';
export {
  connectRedis,
  prefixOf,
  describeRedis,
  queueUnavailable,
  whenSettled,
  withTimeout,
} from './connection';
export type { RedisClient, ConnectionRole } from './connection';
export { SecretStore, SECRET_TTL_SECONDS, secretTexts } from './secrets';
export { ResultStore, RESULT_TTL_SECONDS } from './result-store';
export { WorkerRegistry, WorkerHeartbeat, DEFAULT_HEARTBEAT_TTL_MS, BEATS_PER_TTL } from './worker-registry';
export type { WorkerAnnouncement } from './worker-registry';
export { FleetDirectory, fleetImageKey } from './fleet-directory';
export type { FleetHolder, FleetHostInfo, FleetImageId, FleetRecord, FleetView } from './fleet-directory';
export { FleetLock, DEFAULT_FLEET_LOCK_TTL_MS } from './fleet-lock';
export type { FleetLockClaim } from './fleet-lock';
