import type { CacheRegistry, Logger, PeerFailure } from '@imagecache/core';
import { peerMasterUrl, peerSourceFor, peerTokenName, signPeerToken } from '@imagecache/peers';
import type { FleetHostInfo, RedisClient } from '@imagecache/queue';
import type { HttpOptions } from '@imagecache/sources';
import { RedisFleet } from './redis-fleet';

/** What a worker needs to take part in a fleet (config `peers`, issue #12). */
export interface FleetMembership {
  /**
   * This host's peer service as other hosts reach it, given the port it listens on; undefined when this process
   * serves none (it then takes from peers but publishes nothing: no one could fetch it).
   */
  advertiseUrl: (peerPort: number) => string;
  /** Hosts of one group (rack, zone) are asked first. */
  group?: string;
  /** The fleet's shared secret (peer tokens). Never logged. */
  secret: string;
  /** Life of the tokens this host sends, seconds. */
  tokenTtlSeconds: number;
  /** Timeouts, minimum rate and TLS trust of downloads from peers (the host's `http`, `peers.tls.caFile`). */
  http?: HttpOptions;
}

/**
 * Joins the fleet: announces this host in the directory and gives every cache of the registry the fleet, so
 * their misses ask peers first and take the fleet-wide claim before going to the origin.
 */
export async function joinFleet(o: {
  host: string;
  /** The port this process's peer service listens on (undefined: none). */
  peerPort?: number;
  membership: FleetMembership;
  registry: CacheRegistry;
  redis: RedisClient;
  prefix: string;
  logger: Logger;
  heartbeatTtlMs?: number;
  onPeerFailed?: (host: string, reason: PeerFailure) => void;
}): Promise<RedisFleet> {
  const { secret, tokenTtlSeconds, http, group } = o.membership;
  const self: FleetHostInfo = {
    host: o.host,
    url: o.peerPort === undefined ? undefined : o.membership.advertiseUrl(o.peerPort),
    ...(group !== undefined && { group }),
  };
  const fleet = new RedisFleet({
    redis: o.redis,
    prefix: o.prefix,
    self,
    heartbeatTtlMs: o.heartbeatTtlMs,
    logger: o.logger,
    onPeerFailed: o.onPeerFailed,
    peerSource: (record, baseUrl) =>
      peerSourceFor({
        url: peerMasterUrl(baseUrl, record.cache, record.name),
        // A fresh token per request: a download resumed after the first one expired still gets in.
        token: () => signPeerToken(secret, peerTokenName(record.cache, record.name), tokenTtlSeconds),
        expectedSha256: record.sha256,
        expectedSize: record.size,
        http,
      }),
  });
  await fleet.start();
  for (const cache of o.registry.caches) cache.useFleet(fleet);
  const held = await fleet.resync(o.registry.caches);
  o.logger.info({ host: self.host, url: self.url, group: self.group, masters: held }, 'joined the fleet');
  return fleet;
}
