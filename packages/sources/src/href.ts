import { InvalidHref, redactHref } from '@imagecache/errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SCHEME = /^([a-z][a-z0-9+.-]*):/i;
const GLANCE = /^glance:\/\//i;
// eslint-disable-next-line no-control-regex
const NOT_HREF_TEXT = /[\s\u0000-\u001f\u007f\\]/;

/**
 * Removes credentials from any text that looks like an href, even one that does not parse: `user:pass@`
 * (up to the last `@` of the authority, so a password holding `@` is hidden whole) and secret-looking
 * query values.
 */
export function safeHrefOf(href: string): string {
  return redactHref(href.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@'));
}

/** The scheme of an href, lower case, or undefined when it has none. */
export function schemeOf(href: string): string | undefined {
  return SCHEME.exec(href)?.[1]?.toLowerCase();
}

/** True when `href` names an image in an image service: a bare UUID, or a `glance://` reference. */
export function isImageServiceId(href: string): boolean {
  return UUID.test(href) || GLANCE.test(href);
}

/**
 * The image id of an image-service href (`UUID`, `glance://UUID`, or the legacy `glance://host:port/UUID`),
 * in canonical lower case: the engine names masters by it. Throws `InvalidHref` for anything else.
 */
export function parseImageServiceId(href: string): string {
  if (UUID.test(href)) return href.toLowerCase();
  const m = /^glance:\/\/(.*)$/i.exec(href);
  if (m) {
    const id = (m[1] ?? '').split('/').pop() ?? '';
    if (UUID.test(id)) return id.toLowerCase();
    throw new InvalidHref(
      `invalid image href ${safeHrefOf(href)}: glance:// must be followed by an image UUID`,
      {
        href: safeHrefOf(href),
      },
    );
  }
  throw new InvalidHref(
    `invalid image href ${safeHrefOf(href)}: not an image-service id (a UUID or glance://UUID)`,
    {
      href: safeHrefOf(href),
    },
  );
}

/** Throws InvalidHref for text that can't be an href at all (whitespace, control characters, backslashes). */
export function checkHrefText(href: unknown): asserts href is string {
  if (typeof href !== 'string' || href.length === 0) {
    throw new InvalidHref('invalid image href: empty or not a string');
  }
  if (NOT_HREF_TEXT.test(href)) {
    throw new InvalidHref(
      `invalid image href ${safeHrefOf(href)}: contains whitespace, control characters or "\\"`,
      {
        href: safeHrefOf(href),
      },
    );
  }
}

export function invalidHref(href: string, why: string): InvalidHref {
  const safe = safeHrefOf(href);
  return new InvalidHref(`invalid image href ${safe}: ${why}`, { href: safe });
}
