export { HostWorker } from './host-worker';
export type { HostWorkerOptions } from './host-worker';
export { SHUTDOWN } from './processors/outcome';
