import { createHmac, timingSafeEqual } from 'node:crypto';
import { PeerTokenInvalid, UsageError } from '@imagecache/errors';

/** Default life of a peer token: long enough for a request to start, short enough that a leaked one soon dies. */
export const DEFAULT_PEER_TOKEN_TTL_SECONDS = 60;

/** `<expiry, unix seconds>.<HMAC-SHA256, base64url (43 characters)>`. */
const TOKEN = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

/**
 * What the MAC covers: a version tag (so a MAC made for anything else under the same secret never passes), the
 * name and the expiry, separated by a character a name can't hold.
 */
function mac(secret: string | Buffer, name: string, expiry: number): Buffer {
  return createHmac('sha256', secret).update(`imagecache-peer-v1\n${name}\n${expiry}`).digest();
}

function checkSecret(secret: string | Buffer): void {
  if (secret.length === 0) throw new UsageError('peers.secret is empty');
}

/**
 * A token granting `name` (`<cache>/<masterName>`) until `ttlSeconds` from `now` (milliseconds). Anyone holding
 * `secret` can make one: it is shared by the hosts of a fleet and by nobody else.
 */
export function signPeerToken(
  secret: string | Buffer,
  name: string,
  ttlSeconds = DEFAULT_PEER_TOKEN_TTL_SECONDS,
  now = Date.now(),
): string {
  checkSecret(secret);
  if (!(ttlSeconds > 0)) throw new UsageError(`a peer token's life must be positive, got ${ttlSeconds}`);
  const expiry = Math.floor(now / 1000) + Math.ceil(ttlSeconds);
  return `${expiry}.${mac(secret, name, expiry).toString('base64url')}`;
}

/**
 * Throws `PeerTokenInvalid` (`details.reason`: `malformed`, `signature` or `expired`) unless `token` grants
 * `name` at `now`. The MAC is compared in constant time; neither the token nor the secret is quoted.
 */
export function verifyPeerToken(
  secret: string | Buffer,
  token: string | undefined,
  name: string,
  now = Date.now(),
): void {
  checkSecret(secret);
  const m = TOKEN.exec(token ?? '');
  if (!m) throw new PeerTokenInvalid('peer token missing or malformed', { reason: 'malformed' });
  const expiry = Number(m[1]);
  const given = Buffer.from(m[2]!, 'base64url');
  const wanted = mac(secret, name, expiry);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted))
    throw new PeerTokenInvalid(`peer token does not grant ${name}`, { reason: 'signature' });
  if (expiry * 1000 <= now)
    throw new PeerTokenInvalid(`peer token for ${name} expired`, { reason: 'expired' });
}
