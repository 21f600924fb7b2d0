import type { Logger } from './logger';
import type { RemovedMaster } from './clean-up';
import type { FetchResult } from './result';

/** A fetch that ended: served from a master (`hit`), downloaded (`miss`), or failed. */
export type FetchEvent =
  | { cache: string; outcome: 'hit' | 'miss'; result: FetchResult }
  | {
      cache: string;
      outcome: 'error';
      /** The error fetchImage threw (an ImageCacheError, except for a bug). */
      error: unknown;
      /** Its stable `code` (`IMAGECACHE_ERROR` for an untyped one). */
      code: string;
      /** Milliseconds spent per stage until the failure, and in all. */
      durations: FetchResult['durations'];
    };

/** One master a clean-up removed (TTL, size, or an amount asked for). */
export interface EvictEvent extends RemovedMaster {
  cache: string;
}

/**
 * What the master folder holds, as a clean-up or `usage()` just read it: the allocated bytes of every regular
 * file in it (what counts towards the cache's size) and their number, foreign files included.
 */
export interface CacheUsage {
  cache: string;
  totalSize: number;
  count: number;
}

/** What an ImageCache reports as it works (see ImageCache.on). */
export interface CacheEventMap {
  fetch: FetchEvent;
  evict: EvictEvent;
  usage: CacheUsage;
}

export type CacheEventName = keyof CacheEventMap;
export type CacheListener<K extends CacheEventName> = (event: CacheEventMap[K]) => void;

/**
 * The listeners of one cache. Listeners run synchronously where the event happens; one that throws is logged
 * and never fails the fetch or clean-up it observes. With no listener an emit is one lookup: the warm hit pays
 * nothing else.
 */
export class CacheEvents {
  private readonly listeners = new Map<CacheEventName, Set<(event: never) => void>>();

  constructor(private readonly logger: Logger) {}

  /** Adds a listener; the function returned removes it. */
  on<K extends CacheEventName>(event: K, listener: CacheListener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<K extends CacheEventName>(event: K, listener: CacheListener<K>): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** True when someone listens: a payload that costs something to build is built only then. */
  has(event: CacheEventName): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  emit<K extends CacheEventName>(event: K, payload: CacheEventMap[K]): void {
    const set = this.listeners.get(event) as Set<CacheListener<K>> | undefined;
    if (!set || set.size === 0) return;
    for (const listener of set) {
      try {
        listener(payload);
      } catch (err) {
        this.logger.warn({ err, event }, 'a cache event listener failed');
      }
    }
  }
}
