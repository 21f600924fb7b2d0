import { ImageTooLarge, InsufficientDiskSpace } from '@imagecache/errors';
import type { ByteBound } from '@imagecache/formats';

/**
 * Bytes kept free on a cache's filesystem whatever is written: a bound met exactly still leaves the filesystem
 * usable (metadata, locks, the next fetch's first blocks).
 */
export const HEADROOM_BYTES = 2 << 20;

/** What a fetch may write, measured once before its first byte (spec.md §4 "Bounds"). */
export interface SpaceBudget {
  /** The cache's size: no image bigger than this is cached. */
  cacheSize: number;
  /** Free bytes on the filesystem right now, less what downloads in flight in this process will still write. */
  free: number;
  /** Bytes downloads in flight in this process will still write (already out of `free`). */
  reserved?: number;
  /**
   * Allocated bytes of the masters clean-up could evict (one link, not busy) on that filesystem; undefined when
   * not counted (a scan of every master folder, done only for a write that needs more than is free).
   */
  evictable?: number;
}

export type Measured = 'declared' | 'body' | 'decompressed' | 'virtual' | 'converted';

const WHAT: Record<Measured, string> = {
  declared: 'its declared size',
  body: 'its body',
  decompressed: 'its decompressed size',
  virtual: 'its virtual size',
  converted: 'its converted output',
};

/**
 * The most one image may take by the cache's size. A size of 0 keeps no unused master (every clean-up evicts
 * them all): it is no bound on one image, which the filesystem alone then bounds.
 */
export function sizeBound(b: { cacheSize: number }): number {
  return b.cacheSize > 0 ? b.cacheSize : Number.POSITIVE_INFINITY;
}

/** The most any one image may take: the cache's size, and what the filesystem can give it at most. */
export function maxImageBytes(b: SpaceBudget): number {
  return Math.min(sizeBound(b), Math.max(0, b.free + (b.evictable ?? 0) - HEADROOM_BYTES));
}

/** True when a write of `size` needs the evictable bytes counted: more than is free, within the cache's size. */
export function needsEviction(b: { cacheSize: number; free: number }, size: number | undefined): boolean {
  return size !== undefined && size <= sizeBound(b) && size > b.free - HEADROOM_BYTES;
}

/** The most a write may add now, without evicting anything first: the free bytes, less the headroom. */
export function maxWriteBytes(b: SpaceBudget): number {
  return Math.min(sizeBound(b), Math.max(0, b.free - HEADROOM_BYTES));
}

/**
 * Refuses a size known before writing (declared, virtual, decompressed per the zstd header): IMAGE_TOO_LARGE
 * when it could not fit even with no other download in flight, INSUFFICIENT_DISK_SPACE when it could, later.
 */
export function checkSize(
  b: SpaceBudget,
  what: Measured,
  size: number | undefined,
  href: string,
  path: string,
): void {
  if (size === undefined || size <= maxImageBytes(b)) return;
  const idle = { ...b, free: b.free + (b.reserved ?? 0), reserved: 0 };
  if (size > maxImageBytes(idle)) throw tooLarge(idle, what, size, maxImageBytes(idle), href);
  throw new InsufficientDiskSpace(path, size, b.free, { href, reserved: b.reserved, evictable: b.evictable });
}

/** A running bound of `bytes` whose error names `what` and the budget. */
export function byteBound(b: SpaceBudget, what: Measured, bytes: number, href: string): ByteBound {
  return { bytes, error: (size) => tooLarge(b, what, size, bytes, href, true) };
}

export function tooLarge(
  b: SpaceBudget,
  what: Measured,
  size: number,
  limit: number,
  href: string,
  atLeast = false,
): ImageTooLarge {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const why =
    limit >= sizeBound(b)
      ? `the cache's size (${mib(b.cacheSize)})`
      : `what its filesystem can give it (${mib(limit)}: ${mib(b.free)} free${b.evictable === undefined ? '' : `, ${mib(b.evictable)} evictable`})`;
  return new ImageTooLarge(
    `image too large: ${WHAT[what]} (${atLeast ? 'over ' : ''}${mib(size)}) exceeds ${why}`,
    {
      href,
      measured: what,
      size,
      atLeast,
      limit,
      cacheSize: b.cacheSize,
      free: b.free,
      evictable: b.evictable,
    },
  );
}
