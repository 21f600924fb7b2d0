export { HostWorker, DEFAULT_LOCK_DURATION_MS, MAX_STALLED_COUNT, stalledIntervalFor } from './host-worker';
export { contained, installCrashHandlers } from './containment';
export type { HostWorkerOptions } from './host-worker';
export { SHUTDOWN } from './processors/outcome';
export { WorkerMetrics, serveMetrics, queueKindOf, WORKER_METRIC_NAMES } from './metrics';
export type { MetricsServer, MetricsServerOptions } from './metrics';
export { RedisFleet, DEFAULT_FLEET_HEARTBEAT_TTL_MS } from './redis-fleet';
export type { RedisFleetOptions } from './redis-fleet';
