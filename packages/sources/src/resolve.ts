import { FileSource } from './file-source';
import { GlanceSource } from './glance/glance-source';
import { checkHrefText, invalidHref, isImageServiceId, schemeOf } from './href';
import { HttpSource } from './http/http-source';
import { OciSource } from './oci/oci-source';
import type { SourceOptions } from './options';
import type { ImageSource } from './types';

/**
 * Turns an href into an ImageSource, validating it before any I/O on the image: http(s) URLs are checked
 * for form only; file:// hrefs against the rules of spec.md §7 (stat and realpath, never a read); image-service
 * ids (a bare UUID, `glance://ID`) for form and against the configuration; `oci://` references for form
 * (before any request), then a tag is resolved to its digest (manifest requests to the registry).
 * Throws InvalidHref (malformed, unknown scheme), ImageRefValidationFailed (file rules), ConfigError (no image
 * service configured), or the registry's errors for a tag. `signal` cancels a tag's resolution.
 */
export async function resolveSource(
  href: string,
  options: SourceOptions = {},
  signal?: AbortSignal,
): Promise<ImageSource> {
  checkHrefText(href);
  if (isImageServiceId(href)) return new GlanceSource(href, options);
  switch (schemeOf(href)) {
    case 'http':
    case 'https':
      return new HttpSource(href, options);
    case 'file':
      return FileSource.resolve(href, options);
    case 'oci':
      return OciSource.resolve(href, options, signal);
    case undefined:
      throw invalidHref(
        href,
        'not a URL nor an image UUID (expected http://, https://, file://, oci://, glance:// or a UUID)',
      );
    default:
      throw invalidHref(
        href,
        `unknown scheme "${schemeOf(href)}" (expected http, https, file, oci or glance, or an image UUID)`,
      );
  }
}
