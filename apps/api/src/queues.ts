import { Queue } from 'bullmq';
import type { Cluster } from 'ioredis';
import { parseQueueName, queueNames, type RedisClient } from '@imagecache/queue';

/** A host and the caches whose queues the API shows (on the board) and measures (in /metrics). */
export interface HostQueues {
  host: string;
  caches: string[];
}

/** @imagecache/queue reads queue names back (names.ts, their one owner). */
export { parseQueueName };
export type { QueueInfo } from '@imagecache/queue';

/** Every queue of the given hosts: fetch and clean per cache, clean-caches per host. */
export function configuredQueues(hosts: readonly HostQueues[]): string[] {
  const out: string[] = [];
  for (const h of hosts) {
    for (const c of h.caches) out.push(queueNames.fetch(h.host, c), queueNames.clean(h.host, c));
    out.push(queueNames.cleanCaches(h.host));
  }
  return [...new Set(out)];
}

/** Glob-escapes a key prefix for SCAN MATCH (a Cluster hash tag has no glob characters, but a prefix may). */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Queue names found in Redis under `prefix` (every BullMQ key is `<prefix>:<queue>:<suffix>`). SCAN, never KEYS;
 * on a Cluster, every master is scanned (with a hash-tag prefix all keys live on one of them).
 */
export async function discoverQueues(
  redis: RedisClient,
  prefix: string,
  maxKeys = 200_000,
): Promise<string[]> {
  const found = new Set<string>();
  const match = `${globEscape(prefix)}:*@*`;
  const nodes =
    'nodes' in redis && typeof (redis as Cluster).nodes === 'function'
      ? (redis as Cluster).nodes('master')
      : [redis];
  let seen = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      seen += keys.length;
      for (const key of keys) {
        const rest = key.slice(prefix.length + 1);
        const name = rest.slice(0, rest.indexOf(':') >= 0 ? rest.indexOf(':') : undefined);
        if (parseQueueName(name)) found.add(name);
      }
    } while (cursor !== '0' && seen < maxKeys);
  }
  return [...found].sort();
}

/**
 * BullMQ Queue objects for the queues the API shows and measures, on one shared connection. Read-mostly:
 * they never write a queue's meta key (`skipMetasUpdate`), so looking at a queue never creates it.
 * A BullMQ Queue made while its connection is not ready fails for good (its first INFO is refused), so the
 * objects are made once the connection is ready; until then the directory only knows the names.
 */
export class QueueDirectory {
  private readonly names = new Set<string>();
  private readonly queues = new Map<string, Queue>();
  private readonly listeners: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly connection: RedisClient,
    private readonly prefix: string,
  ) {
    connection.on('ready', () => this.materialize());
  }

  /** Adds names not known yet. */
  add(names: readonly string[]): void {
    for (const name of names) if (parseQueueName(name)) this.names.add(name);
    this.materialize();
  }

  /** Adds the queues found in Redis under the prefix. */
  async discover(): Promise<void> {
    this.add(await discoverQueues(this.connection, this.prefix));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The queues ready to be read, by name. */
  list(): Queue[] {
    return [...this.queues.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.queues.clear();
  }

  private materialize(): void {
    if (this.closed || this.connection.status !== 'ready') return;
    let added = false;
    for (const name of this.names) {
      if (this.queues.has(name)) continue;
      const q = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        skipMetasUpdate: true,
        skipWaitingForReady: true,
      });
      q.on('error', () => undefined);
      this.queues.set(name, q);
      added = true;
    }
    if (added) for (const l of this.listeners) l();
  }
}
