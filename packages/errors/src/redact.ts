// Credentials must never reach logs, errors, job data or metrics (design.md §5.6).
const SECRET_PARAM = /(token|sig|signature|secret|password|passwd|pass|key|credential|auth)/i;

const LEADING_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** A URL inside a text: from its scheme up to a blank or a quote (passwords with either are not found). */
const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s'"<>`]+/gi;

/**
 * Returns `href` with `user:pass@` and secret-looking query values replaced by `***`. A value that is not itself
 * a URL but holds one (a checksum given as `sha256:http://user:pass@host/SHA256SUMS`) has the URLs in it redacted.
 */
export function redactHref(href: string): string {
  if (!LEADING_SCHEME.test(href)) return redactText(redactQuery(href));
  return redactQuery(redactUserinfo(href));
}

/** Every URL found in a free text (an error message, a log line) redacted as redactHref does. */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => redactQuery(redactUserinfo(url)));
}

function redactUserinfo(href: string): string {
  // No '@', no userinfo (both patterns below need one): the common case costs no URL parse.
  if (!href.includes('@')) return href;
  let out = href.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
  if (out === href && !parses(href)) {
    // A password holding an unencoded '/', '?' or '#' breaks the URL: then everything between '://' and the
    // last '@' goes (over-redacting a malformed href is fine; leaking a password is not).
    out = href.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, '$1***@');
  }
  return out;
}

function redactQuery(href: string): string {
  let out = href;
  const q = out.indexOf('?');
  if (q >= 0) {
    const [base, rest] = [out.slice(0, q), out.slice(q + 1)];
    const hash = rest.indexOf('#');
    const query = hash >= 0 ? rest.slice(0, hash) : rest;
    const frag = hash >= 0 ? rest.slice(hash) : '';
    const redacted = query
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        if (eq < 0) return pair;
        return SECRET_PARAM.test(pair.slice(0, eq)) ? `${pair.slice(0, eq)}=***` : pair;
      })
      .join('&');
    out = `${base}?${redacted}${frag}`;
  }
  return out;
}

/** Removes every occurrence of the given secrets from a text (for messages quoting servers). */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 3) out = out.split(s).join('***');
  return out;
}

function parses(href: string): boolean {
  try {
    new URL(href);
    return true;
  } catch {
    return false;
  }
}

/**
 * Keys of a logged object that may hold a secret, for pino's `redact` (each process adds its own request paths):
 * credentials of a request or a cache, and the fleet's secret.
 */
export const SECRET_LOG_PATHS: readonly string[] = Object.freeze([
  'auth',
  '*.auth',
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
]);
