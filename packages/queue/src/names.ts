import { UsageError } from '@imagecache/errors';

/** Prefix of every key: a Redis Cluster hash tag, so all of a deployment's keys live in one slot. */
export const DEFAULT_PREFIX = '{imagecache}';

export type JobKind = 'fetch' | 'clean' | 'clean-caches';

/** BullMQ refuses `:` in queue names and job ids; names must also stay parseable. */
function checkPart(what: string, value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/.test(value)) {
    throw new UsageError(`${what} ${JSON.stringify(value)} may hold only letters, digits, '.', '_' and '-'`);
  }
  return value;
}

/** Queues are per host and per master folder (cache); clean-caches is per host. */
export const queueNames = {
  fetch: (host: string, cache: string) => `fetch.${checkPart('cache', cache)}@${checkPart('host', host)}`,
  clean: (host: string, cache: string) => `clean.${checkPart('cache', cache)}@${checkPart('host', host)}`,
  cleanCaches: (host: string) => `clean-caches@${checkPart('host', host)}`,
};

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
