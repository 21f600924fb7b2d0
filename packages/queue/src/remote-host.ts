import type { CallOptions, HostHandle, SpaceReport } from '@imagecache/core';
import type { RequestAuth } from '@imagecache/contract';
import { UsageError } from '@imagecache/errors';
import type { ImageCacheClient } from './image-cache-client';
import { RemoteCache } from './remote-cache';

/**
 * A host's caches, served by its workers: the engine's `HostHandle` through the queue. The caller names the
 * caches it works on (nothing here knows a host's configuration).
 */
export class RemoteHost implements HostHandle {
  readonly caches: readonly RemoteCache[];

  constructor(
    private readonly client: ImageCacheClient,
    readonly name: string,
    caches: readonly string[] = [],
  ) {
    this.caches = caches.map((c) => new RemoteCache(client, name, c));
  }

  /** The cache named (no need to have listed it); without a name, the one cache this handle was given. */
  cache(name?: string): RemoteCache {
    if (name === undefined) {
      if (this.caches.length === 1) return this.caches[0]!;
      throw new UsageError(`name the cache of host ${this.name}: a remote host has no default cache`);
    }
    return this.caches.find((c) => c.name === name) ?? new RemoteCache(this.client, this.name, name);
  }

  cleanUpCaches(
    directory: string,
    images: readonly { href: string; auth?: RequestAuth }[],
    opts: CallOptions = {},
  ): Promise<SpaceReport> {
    return this.client.cleanUpCaches({
      host: this.name,
      directory,
      images: [...images],
      signal: opts.signal,
    });
  }
}
