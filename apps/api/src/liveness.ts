import type { WorkerRegistry } from '@imagecache/queue';
import type { HostQueues } from './queues';

export interface CacheLiveness {
  host: string;
  cache: string;
  /** Worker processes whose announcement is alive and lists this cache. */
  workers: number;
}

/**
 * Which caches have a live worker, from the workers' announcements in Redis: every cache of the configured
 * hosts (0 when none serves it), and every cache some worker announces.
 */
export class WorkerLiveness {
  constructor(
    private readonly registry: WorkerRegistry,
    private readonly hosts: readonly HostQueues[],
  ) {}

  async read(): Promise<CacheLiveness[]> {
    const counts = new Map<string, CacheLiveness>();
    const entry = (host: string, cache: string) => {
      const key = JSON.stringify([host, cache]);
      let e = counts.get(key);
      if (!e) counts.set(key, (e = { host, cache, workers: 0 }));
      return e;
    };
    for (const h of this.hosts) for (const c of h.caches) entry(h.host, c);
    for (const a of await this.registry.live()) for (const c of a.caches) entry(a.host, c).workers++;
    return [...counts.values()].sort(
      (a, b) => a.host.localeCompare(b.host) || a.cache.localeCompare(b.cache),
    );
  }

  /** The configured caches no live worker serves. */
  async unserved(): Promise<{ host: string; cache: string }[]> {
    const configured = new Set(this.hosts.flatMap((h) => h.caches.map((c) => JSON.stringify([h.host, c]))));
    return (await this.read())
      .filter((e) => e.workers === 0 && configured.has(JSON.stringify([e.host, e.cache])))
      .map(({ host, cache }) => ({ host, cache }));
  }
}
