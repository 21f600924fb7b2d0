import * as net from 'node:net';
import * as os from 'node:os';
import type { PeersConfig } from './schema';

/**
 * The URL other hosts reach this host's peer service at: `peers.advertiseUrl` when set, else
 * `http(s)://<bind>:<port>` (https with `peers.tls`); a wildcard bind (0.0.0.0, ::) names this machine's host
 * name instead, as it can't be connected to. `port` and `bind` are the ones actually used (a flag wins over the
 * file; port 0 resolved to the port bound).
 */
export function peerAdvertiseUrl(
  peers: Pick<PeersConfig, 'advertiseUrl' | 'tls' | 'bind'>,
  port: number,
  bind = peers.bind,
): string {
  if (peers.advertiseUrl !== undefined) return peers.advertiseUrl.replace(/\/+$/, '');
  const wildcard = bind === '0.0.0.0' || bind === '::' || bind === '[::]';
  const host = wildcard ? os.hostname() : net.isIPv6(bind) ? `[${bind}]` : bind;
  return `${peers.tls ? 'https' : 'http'}://${host}:${port}`;
}
