export { HostWorker } from './host-worker';
export type { HostWorkerOptions } from './host-worker';
export { SHUTDOWN } from './processors/outcome';
export { WorkerMetrics, serveMetrics, queueKindOf, WORKER_METRIC_NAMES } from './metrics';
export type { MetricsServer, MetricsServerOptions } from './metrics';
