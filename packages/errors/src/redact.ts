// Credentials must never reach logs, errors, job data or metrics (design.md §5.6).
const SECRET_PARAM = /(token|sig|signature|secret|password|passwd|pass|key|credential|auth)/i;

/** Returns `href` with `user:pass@` and secret-looking query values replaced by `***`. */
export function redactHref(href: string): string {
  let out = href.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
  if (out === href && !parses(href)) {
    // A password holding an unencoded '/', '?' or '#' breaks the URL: then everything between '://' and the
    // last '@' goes (over-redacting a malformed href is fine; leaking a password is not).
    out = href.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, '$1***@');
  }
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
