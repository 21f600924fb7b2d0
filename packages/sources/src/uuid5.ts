import { createHash } from 'node:crypto';

/** RFC 4122 URL namespace (6ba7b811-9dad-11d1-80b4-00c04fd430c8). */
const URL_NAMESPACE = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');

/**
 * Names already worked out: a warm hit names its master from the same href call after call, and a SHA-1 through
 * node:crypto costs a fresh process more than the rest of the naming. Bounded; an href that may carry a secret
 * (userinfo, a query) is never kept.
 */
const known = new Map<string, string>();
const KNOWN_MAX = 256;

/** UUIDv5 of `name` in the URL namespace, canonical text: what Ironic (and the engine) name a URL's master by. */
export function uuidv5Url(name: string): string {
  let id = known.get(name);
  if (id !== undefined) return id;
  id = uuidv5(name);
  if (!name.includes('@') && !name.includes('?')) {
    if (known.size >= KNOWN_MAX) known.delete(known.keys().next().value!);
    known.set(name, id);
  }
  return id;
}

function uuidv5(name: string): string {
  const h = createHash('sha1').update(URL_NAMESPACE).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
