export { ImageCacheClient, MAX_READDS } from './image-cache-client';
export type {
  ImageCacheClientOptions,
  FetchRequest,
  CleanUpRequest,
  CleanUpCachesRequest,
  JobView,
  ListedCache,
  CleanJobResult,
} from './image-cache-client';
export { RequestAuthSchema } from '@imagecache/contract';
export type { RequestAuth } from '@imagecache/contract';
export { RemoteCache } from './remote-cache';
export { RemoteHost } from './remote-host';
export {
  JOB_NAMES,
  DEFAULT_JOB_OPTIONS,
  FetchJobDataSchema,
  CleanJobDataSchema,
  CleanCachesJobDataSchema,
  JobSecretSchema,
} from './catalog';
export type {
  FetchJobData,
  CleanJobData,
  CleanCachesJobData,
  JobProgress,
  JobSecret,
  FetchSecret,
  CleanCachesSecret,
} from './catalog';
export { DEFAULT_PREFIX, JOB_KINDS, queueNames, parseQueueName, jobIdFor, queueOfJobId, keys } from './names';
export type { JobKind, QueueInfo } from './names';
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
export { CancelRecord, CANCEL_TTL_SECONDS } from './cancel-record';
export { WorkerRegistry, WorkerHeartbeat, DEFAULT_HEARTBEAT_TTL_MS, BEATS_PER_TTL } from './worker-registry';
export type { WorkerAnnouncement } from './worker-registry';
export { FleetDirectory, fleetImageKey } from './fleet-directory';
export type { FleetHolder, FleetHostInfo, FleetImageId, FleetRecord, FleetView } from './fleet-directory';
export { FleetLock, DEFAULT_FLEET_LOCK_TTL_MS } from './fleet-lock';
export type { FleetLockClaim } from './fleet-lock';
