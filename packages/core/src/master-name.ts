import { uuidv5Url } from '@imagecache/sources';

/** Suffix of a master produced with raw conversion requested (even when none was needed), as Ironic names it. */
export const CONVERTED_SUFFIX = '.converted';

/**
 * The master's file name, Ironic-compatible so an existing Ironic cache folder can be adopted:
 * the image-service id as given, or UUIDv5 (URL namespace) of the exact href text.
 */
export function masterName(href: string, imageId: string | undefined, forceRaw: boolean): string {
  const base = imageId ?? uuidv5Url(href);
  return forceRaw ? base + CONVERTED_SUFFIX : base;
}

const MASTER_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(\.converted)?$/i;

/**
 * True for a name a master can have (an image-service id or a UUIDv5, either with `.converted`). Anything
 * else in a master folder (a PXE loader, an operator's file) is foreign unless metadata vouches for it.
 */
export function isMasterName(name: string): boolean {
  return MASTER_NAME.test(name);
}
