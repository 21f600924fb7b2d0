/** The one place the peer service's URL layout and token names are spelled. */
export const PEER_PATH_PREFIX = '/v1/masters/';

/** What a peer token grants: one master of one cache. */
export function peerTokenName(cache: string, master: string): string {
  return `${cache}/${master}`;
}

/** The URL of `master` of `cache` on the peer reached at `baseUrl` (`http(s)://host:port`, a path is kept). */
export function peerMasterUrl(baseUrl: string, cache: string, master: string): string {
  const base = baseUrl.replace(/\/+$/, '');
  return `${base}${PEER_PATH_PREFIX}${encodeURIComponent(cache)}/${encodeURIComponent(master)}`;
}

/**
 * The cache and master a request path names (its query ignored), each percent-decoded; undefined when the path
 * is not `/v1/masters/<cache>/<master>` with two non-empty segments. Nothing else is checked here: the server
 * decides whether the decoded names are acceptable.
 */
export function parsePeerPath(rawUrl: string): { cache: string; master: string } | undefined {
  const pathPart = rawUrl.split('?', 1)[0] ?? '';
  if (!pathPart.startsWith(PEER_PATH_PREFIX)) return undefined;
  const parts = pathPart.slice(PEER_PATH_PREFIX.length).split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  try {
    return { cache: decodeURIComponent(parts[0]), master: decodeURIComponent(parts[1]) };
  } catch {
    return undefined;
  }
}
