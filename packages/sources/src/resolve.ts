import { FileSource } from './file-source';
import { checkHrefText, invalidHref, isImageServiceId, parseImageServiceId, schemeOf } from './href';
import { HttpSource } from './http/http-source';
import type { SourceOptions } from './options';
import type { ImageSource } from './types';

/**
 * Turns an href into an ImageSource, validating it before any I/O on the image: http(s) URLs are checked
 * for form only; file:// hrefs against the rules of spec.md §7 (stat and realpath, never a read).
 * Throws InvalidHref (malformed, unknown scheme, not supported yet) or ImageRefValidationFailed (file rules).
 */
export async function resolveSource(href: string, options: SourceOptions = {}): Promise<ImageSource> {
  checkHrefText(href);
  if (isImageServiceId(href)) {
    parseImageServiceId(href); // a malformed id is refused as such
    throw invalidHref(href, 'image-service (glance) hrefs are not supported yet');
  }
  switch (schemeOf(href)) {
    case 'http':
    case 'https':
      return new HttpSource(href, options);
    case 'file':
      return FileSource.resolve(href, options);
    case 'oci':
      throw invalidHref(href, 'oci:// hrefs are not supported yet');
    case undefined:
      throw invalidHref(href, 'not a URL (expected http://, https:// or file://)');
    default:
      throw invalidHref(href, `unknown scheme "${schemeOf(href)}" (expected http, https or file)`);
  }
}
