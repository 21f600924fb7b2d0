import { InsufficientDiskSpace, UsageError } from '@imagecache/errors';
import { resolveSource, type ImageAuth, type SourceOptions } from '@imagecache/sources';
import type { CleanUpResult } from './clean-up';
import { deviceOf, freeSpace } from './disk-space';
import type { ImageCache } from './image-cache';
import { silentLogger, type Logger } from './logger';

export interface ImageRequest {
  href: string;
  auth?: ImageAuth;
}

export interface SpaceReport {
  directory: string;
  required: number;
  /** Free bytes at the end. */
  free: number;
  /** The caches cleaned, in the order they were, with what each freed. */
  cleaned: { cache: string; result: CleanUpResult }[];
}

/** The caches of one host, highest priority first (ties keep registration order). */
export class CacheRegistry {
  private readonly entries: ImageCache[] = [];

  constructor(
    private readonly sourceOptions: SourceOptions = {},
    private readonly logger: Logger = silentLogger,
  ) {}

  register(cache: ImageCache): this {
    if (this.entries.some((c) => c.name === cache.name))
      throw new UsageError(`cache ${cache.name} is already registered`);
    this.entries.push(cache);
    cache.useRegistry(this);
    return this;
  }

  get caches(): readonly ImageCache[] {
    // Array.prototype.sort is stable: ties keep registration order.
    return [...this.entries].sort((a, b) => b.priority - a.priority);
  }

  get(name: string): ImageCache | undefined {
    return this.entries.find((c) => c.name === name);
  }

  /** Frees room for the images' download sizes in `directory` (spec.md §8), or throws InsufficientDiskSpace. */
  async cleanUpCaches(
    directory: string,
    images: readonly ImageRequest[],
    signal?: AbortSignal,
  ): Promise<SpaceReport> {
    let required = 0;
    for (const image of images) {
      const source = await resolveSource(
        image.href,
        { ...this.sourceOptions, auth: image.auth ?? this.sourceOptions.auth },
        signal,
      );
      const info = await source.show({ signal });
      if (info.size === undefined) this.logger.warn({ href: source.safeHref }, 'size unknown: counted as 0');
      required += info.size ?? 0;
    }
    return this.makeRoom(directory, required);
  }

  /** Allocated bytes clean-up could evict from the caches on `directory`'s filesystem. */
  async evictableBytes(directory: string): Promise<number> {
    const dev = await deviceOf(directory);
    let total = 0;
    for (const cache of this.caches) {
      await cache.start();
      if ((await deviceOf(cache.masterDir)) === dev) total += await cache.evictableBytes();
    }
    return total;
  }

  /** Cleans the caches on `directory`'s filesystem, highest priority first, until `required` bytes are free. */
  async makeRoom(directory: string, required: number): Promise<SpaceReport> {
    let free = await freeSpace(directory);
    const cleaned: SpaceReport['cleaned'] = [];
    if (required < free) return { directory, required, free, cleaned };
    const dev = await deviceOf(directory);
    for (const cache of this.caches) {
      await cache.start();
      if ((await deviceOf(cache.masterDir)) !== dev) continue;
      const result = await cache.cleanUp(required - free);
      cleaned.push({ cache: cache.name, result });
      free = await freeSpace(directory);
      if (required < free) return { directory, required, free, cleaned };
    }
    throw new InsufficientDiskSpace(directory, required, free);
  }
}
