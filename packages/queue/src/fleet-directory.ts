import { createHash } from 'node:crypto';
import type { RedisClient } from './connection';
import { keys } from './names';

/** One version of one image across the fleet: its master name and the origin validator it was fetched under. */
export interface FleetImageId {
  name: string;
  validator: string;
}

/** A host of the fleet as it announces itself while it lives. */
export interface FleetHostInfo {
  host: string;
  /** Base URL of its peer service (`…/v1/masters/<cache>/<name>` is a master); none: it serves nothing. */
  url?: string;
  /** Hosts of one group (a rack, a zone) are asked first. */
  group?: string;
  /**
   * Read back: the URL of every live peer service of the host (each worker replica runs one; they serve the same
   * folders), the one that beat last first.
   */
  urls?: string[];
}

/** What a host published: enough for a taker to download and verify it. */
export interface FleetRecord extends FleetImageId {
  host: string;
  cache: string;
  sha256: string;
  size: number;
  checksum: { algo: 'md5' | 'sha256' | 'sha512'; value: string };
  format?: string;
  virtualSize?: number;
  converted: boolean;
  decompressed?: boolean;
  publishedAt: number;
}

/** A record and its host's announcement (absent: the host is dead, its records are ignored). */
export interface FleetHolder {
  record: FleetRecord;
  host?: FleetHostInfo;
}

/** The fleet as `ls --fleet` and `GET /v1/fleet` show it. */
export interface FleetView {
  images: {
    name: string;
    validator: string;
    holders: {
      host: string;
      cache: string;
      /** Its host beats: takers may ask it. */
      live: boolean;
      group?: string;
      url?: string;
      sha256: string;
      size: number;
      format?: string;
      converted: boolean;
      publishedAt: string;
    }[];
  }[];
  /** Every host that ever joined: live while its announcement lasts. */
  hosts: { host: string; live: boolean; url?: string; urls?: string[]; group?: string }[];
  /** Peers takers skipped, per `host/reason` (`unverified`: bytes that did not match; `failed`). */
  skippedPeers: Record<string, number>;
}

/** The key of an image's records: validators are arbitrary text (an ETag, a date), names are not. */
export function fleetImageKey(id: FleetImageId): string {
  return createHash('sha256').update(`${id.name}\n${id.validator}`).digest('hex').slice(0, 32);
}

/**
 * The fleet's directory in Redis, under the deployment's prefix (one Cluster slot with the queues): per image,
 * a hash of its holders (`host/cache` → record); per host, an announcement with a TTL (a dead host's records are
 * ignored, its beat gone) and the index of what it holds (so an eviction, which knows no validator, finds its
 * record). One owner for writers (the worker's fleet) and readers (CLI, API).
 */
export class FleetDirectory {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /** Announces (or refreshes) a host for `ttlMs`, and the peer service `id` of it (a replica's) at `host.url`. */
  async beat(host: FleetHostInfo, ttlMs: number, id: string): Promise<void> {
    const m = this.redis
      .multi()
      .set(keys.fleetHost(this.prefix, host.host), JSON.stringify(host), 'PX', ttlMs)
      .sadd(keys.fleetHosts(this.prefix), host.host);
    if (host.url !== undefined) {
      m.set(keys.fleetPeer(this.prefix, host.host, id), host.url, 'PX', ttlMs);
      m.sadd(keys.fleetPeers(this.prefix, host.host), id);
    }
    await m.exec();
  }

  /** The host stops serving: its records stay (a restart serves them again) but are ignored meanwhile. */
  async leave(host: string): Promise<void> {
    await this.redis.del(keys.fleetHost(this.prefix, host));
  }

  /** Records a published master, replacing what this host's cache held under that name before. */
  async publish(record: FleetRecord): Promise<void> {
    const field = `${record.host}/${record.cache}`;
    const id = fleetImageKey(record);
    const held = keys.fleetHeld(this.prefix, record.host);
    const previous = await this.redis.hget(held, `${record.cache}/${record.name}`);
    const m = this.redis.multi();
    if (previous && previous !== id) m.hdel(keys.fleetImage(this.prefix, previous), field);
    await m
      .hset(keys.fleetImage(this.prefix, id), field, JSON.stringify(record))
      .sadd(keys.fleetImages(this.prefix), id)
      .hset(held, `${record.cache}/${record.name}`, id)
      .exec();
  }

  /** A master that left a host's cache. */
  async evict(host: string, cache: string, name: string): Promise<void> {
    const held = keys.fleetHeld(this.prefix, host);
    const id = await this.redis.hget(held, `${cache}/${name}`);
    if (!id) return;
    await this.redis
      .multi()
      .hdel(keys.fleetImage(this.prefix, id), `${host}/${cache}`)
      .hdel(held, `${cache}/${name}`)
      .exec();
  }

  /** Drops every record of a host (it announces what it holds again: see RedisFleet.resync). */
  async forget(host: string): Promise<void> {
    const held = keys.fleetHeld(this.prefix, host);
    const entries = await this.redis.hgetall(held);
    const m = this.redis.multi();
    for (const [entry, id] of Object.entries(entries)) {
      m.hdel(keys.fleetImage(this.prefix, id), `${host}/${entry.slice(0, entry.indexOf('/'))}`);
    }
    await m.del(held).exec();
  }

  /** The holders of one image whose host lives. */
  async holders(id: FleetImageId): Promise<FleetHolder[]> {
    const raw = await this.redis.hgetall(keys.fleetImage(this.prefix, fleetImageKey(id)));
    const records = Object.values(raw).map((r) => JSON.parse(r) as FleetRecord);
    const hosts = await this.hosts(records.map((r) => r.host));
    return records.flatMap((record) => {
      const host = hosts.get(record.host);
      return host ? [{ record, host }] : [];
    });
  }

  /** Every image with its holders, live or not (for `ls --fleet` and `GET /v1/fleet`). */
  async list(): Promise<{ images: { name: string; validator: string; holders: FleetHolder[] }[] }> {
    const ids = await this.redis.smembers(keys.fleetImages(this.prefix));
    const images: { name: string; validator: string; holders: FleetHolder[] }[] = [];
    const empty: string[] = [];
    for (const id of ids.sort()) {
      const raw = await this.redis.hgetall(keys.fleetImage(this.prefix, id));
      const records = Object.values(raw).map((r) => JSON.parse(r) as FleetRecord);
      if (records.length === 0) {
        empty.push(id);
        continue;
      }
      const hosts = await this.hosts(records.map((r) => r.host));
      images.push({
        name: records[0]!.name,
        validator: records[0]!.validator,
        holders: records
          .sort((a, b) => a.host.localeCompare(b.host))
          .map((record) => ({ record, host: hosts.get(record.host) })),
      });
    }
    // An image nobody holds any more leaves the index (a record published meanwhile re-adds it).
    if (empty.length) await this.redis.srem(keys.fleetImages(this.prefix), ...empty).catch(() => undefined);
    return { images: images.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  /**
   * What the fleet holds, for people (`ls --fleet`, `GET /v1/fleet`): per image, each holder's host, cache,
   * liveness and what it published; and the peers takers skipped so far. No secret, no credential.
   */
  async view(): Promise<FleetView> {
    const { images } = await this.list();
    return {
      images: images.map((i) => ({
        name: i.name,
        validator: i.validator,
        holders: i.holders.map(({ record: r, host }) => ({
          host: r.host,
          cache: r.cache,
          live: host !== undefined,
          ...(host?.group !== undefined && { group: host.group }),
          ...(host && { url: host.url }),
          sha256: r.sha256,
          size: r.size,
          ...(r.format !== undefined && { format: r.format }),
          converted: r.converted,
          publishedAt: new Date(r.publishedAt).toISOString(),
        })),
      })),
      hosts: await this.allHosts(),
      skippedPeers: await this.failures(),
    };
  }

  private async allHosts(): Promise<FleetView['hosts']> {
    const names = (await this.redis.smembers(keys.fleetHosts(this.prefix))).sort();
    const live = await this.hosts(names);
    return names.map((host) => {
      const h = live.get(host);
      return {
        host,
        live: h !== undefined,
        ...(h?.url !== undefined && { url: h.url }),
        ...(h?.urls !== undefined && { urls: h.urls }),
        ...(h?.group !== undefined && { group: h.group }),
      };
    });
  }

  /** Counts a peer a taker skipped (`unverified`: its bytes did not match what it published). */
  async reportFailure(host: string, reason: string): Promise<void> {
    await this.redis.hincrby(keys.fleetFailures(this.prefix), `${host}/${reason}`, 1);
  }

  /** Skipped peers so far, per `host/reason`. */
  async failures(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(keys.fleetFailures(this.prefix));
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  private async hosts(names: string[]): Promise<Map<string, FleetHostInfo>> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return new Map();
    const raw = await this.redis.mget(...unique.map((h) => keys.fleetHost(this.prefix, h)));
    const live = new Map<string, FleetHostInfo>();
    for (const [i, h] of unique.entries()) {
      if (!raw[i]) continue;
      const info = JSON.parse(raw[i]!) as FleetHostInfo;
      const others = (await this.peerUrls(h)).filter((u) => u !== info.url);
      live.set(h, { ...info, urls: [...(info.url !== undefined ? [info.url] : []), ...others] });
    }
    return live;
  }

  /** The URLs of a host's live peer services (expired ones leave its set). */
  private async peerUrls(host: string): Promise<string[]> {
    const ids = await this.redis.smembers(keys.fleetPeers(this.prefix, host));
    if (ids.length === 0) return [];
    const urls = await this.redis.mget(...ids.map((id) => keys.fleetPeer(this.prefix, host, id)));
    const gone = ids.filter((_, i) => urls[i] === null);
    if (gone.length)
      await this.redis.srem(keys.fleetPeers(this.prefix, host), ...gone).catch(() => undefined);
    return [...new Set(urls.filter((u): u is string => u !== null))];
  }
}
