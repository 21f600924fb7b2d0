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
