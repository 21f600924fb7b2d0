import { randomBytes } from 'node:crypto';
import {
  publishedMasters,
  type CacheFolder,
  type Fleet,
  type FleetClaim,
  type FleetEntry,
  type ImageIdentity,
  type Logger,
  type PeerFailure,
  type PeerOffer,
} from '@imagecache/core';
import {
  FleetDirectory,
  FleetLock,
  type FleetHostInfo,
  type FleetRecord,
  type RedisClient,
} from '@imagecache/queue';
import type { ImageSource } from '@imagecache/sources';
import { ReplicaSource } from './replica-source';

/** Life of a host's fleet announcement without a beat (refreshed every fifth of it). */
export const DEFAULT_FLEET_HEARTBEAT_TTL_MS = 15_000;

export interface RedisFleetOptions {
  redis: RedisClient;
  prefix: string;
  /** This host as peers reach it. */
  self: FleetHostInfo;
  /** A peer's master as a source (its URL, a fresh token per request, the http options of this host). */
  peerSource: (record: FleetRecord, baseUrl: string) => ImageSource;
  heartbeatTtlMs?: number;
  /** Life of a single-flight claim without a beat (see FleetLock). */
  lockTtlMs?: number;
  logger: Logger;
  /** Told of every peer a fetch of this process skipped (the worker's metrics count them). */
  onPeerFailed?: (host: string, reason: PeerFailure) => void;
}

/**
 * The engine's Fleet over Redis: the directory (who holds which image), this host's beat in it, and the
 * fleet-wide single flight. One per worker process; replicas of one host share its name, its beat and its
 * records.
 */
export class RedisFleet implements Fleet {
  private readonly directory: FleetDirectory;
  private readonly lock: FleetLock;
  private timer?: NodeJS.Timeout;
  /** This process's peer service among its host's (each worker replica runs one). */
  private readonly id = `${process.pid}-${randomBytes(4).toString('hex')}`;

  constructor(private readonly o: RedisFleetOptions) {
    this.directory = new FleetDirectory(o.redis, o.prefix);
    this.lock = new FleetLock(o.redis, o.prefix, o.lockTtlMs, (id) =>
      o.logger.warn(
        { master: id.name },
        'fleet claim lost (Redis thought this host dead): another may download too',
      ),
    );
  }

  /** Announces this host and keeps it announced (a dead host's records are ignored once its beat expires). */
  async start(): Promise<void> {
    if (this.o.self.url === undefined) return; // serves nothing: not a peer
    const ttl = this.o.heartbeatTtlMs ?? DEFAULT_FLEET_HEARTBEAT_TTL_MS;
    await this.directory.beat(this.o.self, ttl, this.id);
    this.timer = setInterval(
      () => {
        this.directory.beat(this.o.self, ttl, this.id).catch(() => undefined); // Redis away: tried at the next beat
      },
      Math.max(100, Math.floor(ttl / 5)),
    );
    this.timer.unref();
  }

  /**
   * Replaces this host's records with the masters its caches hold now (a restart, a Redis that lost them): a
   * master evicted while the host was down is no longer offered.
   */
  async resync(caches: readonly { name: string; folder: CacheFolder }[]): Promise<number> {
    if (this.o.self.url === undefined) return 0;
    await this.directory.forget(this.o.self.host);
    let n = 0;
    for (const cache of caches) {
      for (const { identity, entry } of await publishedMasters(cache.folder, cache.name)) {
        await this.published(identity, entry);
        n++;
      }
    }
    return n;
  }

  /**
   * Stops beating. The announcement is left to expire rather than withdrawn: another replica of this host may
   * still serve (its beat renews it).
   */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async offers(identity: ImageIdentity): Promise<PeerOffer[]> {
    const holders = await this.directory.holders(identity);
    const group = this.o.self.group;
    const peers = holders.filter(
      (h) => h.record.host !== this.o.self.host && (h.host?.urls?.length ?? 0) > 0,
    );
    // Spread the takers over the holders; the same group (rack, zone) first.
    shuffle(peers);
    peers.sort((a, b) => Number(b.host?.group === group) - Number(a.host?.group === group));
    return peers.map(({ record, host }) => ({
      host: record.host,
      cache: record.cache,
      name: record.name,
      sha256: record.sha256,
      size: record.size,
      checksum: record.checksum,
      format: record.format,
      virtualSize: record.virtualSize,
      converted: record.converted,
      decompressed: record.decompressed,
      source: new ReplicaSource(host!.urls!.map((url) => this.o.peerSource(record, url))),
    }));
  }

  claim(identity: ImageIdentity, signal?: AbortSignal): Promise<FleetClaim> {
    return this.lock.claim(identity, this.o.self.host, signal);
  }

  async published(identity: ImageIdentity, entry: FleetEntry): Promise<void> {
    if (this.o.self.url === undefined) return;
    await this.directory.publish({
      ...entry,
      name: identity.name,
      validator: identity.validator,
      host: this.o.self.host,
      publishedAt: Date.now(),
    });
  }

  evicted(cache: string, name: string): Promise<void> {
    return this.directory.evict(this.o.self.host, cache, name);
  }

  peerFailed(offer: PeerOffer, reason: PeerFailure): void {
    this.o.onPeerFailed?.(offer.host, reason);
    this.directory.reportFailure(offer.host, reason).catch(() => undefined);
  }
}

function shuffle<T>(list: T[]): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
}
