import { CACHE_NAME, HOST_NAME, checkCacheName, checkHostName } from '@imagecache/config';

/** Prefix of every key: a Redis Cluster hash tag, so all of a deployment's keys live in one slot. */
export const DEFAULT_PREFIX = '{imagecache}';

/**
 * The kinds of queue, each a queue of its own: `fetch.<cache>@<host>`, `clean.<cache>@<host>` (which also runs
 * `list` jobs) and `clean-caches@<host>`. The one owner of how queue names are built and read back; host and
 * cache names follow @imagecache/config's grammar (names.ts), so every name built here parses.
 */
export const JOB_KINDS = ['fetch', 'clean', 'clean-caches'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** Queues are per host and per master folder (cache); clean-caches is per host. */
export const queueNames = {
  fetch: (host: string, cache: string) => `fetch.${checkCacheName(cache)}@${checkHostName(host)}`,
  clean: (host: string, cache: string) => `clean.${checkCacheName(cache)}@${checkHostName(host)}`,
  cleanCaches: (host: string) => `clean-caches@${checkHostName(host)}`,
};

/** A queue name's parts. */
export interface QueueInfo {
  name: string;
  kind: JobKind;
  host: string;
  /** Empty for clean-caches (one queue per host). */
  cache: string;
}

const HOST = HOST_NAME.source.slice(1, -1);
const CACHE = CACHE_NAME.source.slice(1, -1);
const QUEUE_NAME = new RegExp(`^(?:(fetch|clean)\\.(${CACHE})|(clean-caches))@(${HOST})$`);

/** The parts of one of our queue names, or undefined for a name that is not ours (queueNames' inverse). */
export function parseQueueName(name: string): QueueInfo | undefined {
  const m = QUEUE_NAME.exec(name);
  if (!m) return undefined;
  if (m[3]) return { name, kind: 'clean-caches', host: m[4]!, cache: '' };
  return { name, kind: m[1] as 'fetch' | 'clean', host: m[4]!, cache: m[2]! };
}

/** Job ids carry their queue, so `GET /v1/jobs/:id` finds a job from its id alone. */
export function jobIdFor(queueName: string, unique: string): string {
  return `${queueName}~${unique}`;
}

export function queueOfJobId(jobId: string): string | undefined {
  const i = jobId.lastIndexOf('~');
  return i > 0 ? jobId.slice(0, i) : undefined;
}

/** Redis keys of ours beside BullMQ's. */
export const keys = {
  secret: (prefix: string, id: string) => `${prefix}:secret:${id}`,
  /** A fetch's result, kept for a caller whose job is gone (result-store.ts). */
  result: (prefix: string, jobId: string) => `${prefix}:result:${jobId}`,
  cancelChannel: (prefix: string) => `${prefix}:cancel`,
  /** A cancel's record, so a caller never adds a cancelled job again (cancel-record.ts). */
  cancelled: (prefix: string, jobId: string) => `${prefix}:cancelled:${jobId}`,
  /** A worker process's announcement (worker-registry.ts), and the set of their ids. */
  worker: (prefix: string, id: string) => `${prefix}:worker:${id}`,
  workers: (prefix: string) => `${prefix}:workers`,
  /** The fleet's directory (fleet-directory.ts): per image, its holders; per host, its beat and its masters. */
  fleetImage: (prefix: string, id: string) => `${prefix}:fleet:image:${id}`,
  fleetImages: (prefix: string) => `${prefix}:fleet:images`,
  fleetHost: (prefix: string, host: string) => `${prefix}:fleet:host:${host}`,
  fleetHosts: (prefix: string) => `${prefix}:fleet:hosts`,
  fleetHeld: (prefix: string, host: string) => `${prefix}:fleet:held:${host}`,
  /** One peer service of a host (a worker replica's), and the set of a host's. */
  fleetPeer: (prefix: string, host: string, id: string) => `${prefix}:fleet:peer:${host}:${id}`,
  fleetPeers: (prefix: string, host: string) => `${prefix}:fleet:peers:${host}`,
  /** The fleet-wide single flight of one image (fleet-lock.ts). */
  fleetLock: (prefix: string, id: string) => `${prefix}:fleet:lock:${id}`,
  /** Peers skipped by takers, per host and reason. */
  fleetFailures: (prefix: string) => `${prefix}:fleet:failures`,
};
