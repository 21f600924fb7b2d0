import * as fs from 'node:fs';
import { hashFile, type ChecksumAlgo, type ExpectedChecksum } from '@imagecache/checksum';
import { ImageCacheError, ImageTooLarge, InsufficientDiskSpace, OperationAborted } from '@imagecache/errors';
import type { ImageInfo, ImageSource } from '@imagecache/sources';
import type { CacheFolder } from './cache-folder';
import type { Downloaded } from './download';
import { sameIdentity } from './master-identity';
import { lstatOrUndefined, readJsonOrUndefined } from './metadata-io';
import type { MasterMeta } from './result';
import type { Logger } from './logger';

/**
 * One version of one image, the same on every host: the master name and the origin validator it was fetched
 * under (an http ETag or Last-Modified; `immutable` for image-service ids and OCI digests, whose name is the
 * version).
 */
export interface ImageIdentity {
  name: string;
  validator: string;
}

/** What a host tells the fleet about a master it published (and serves to peers from then on). */
export interface FleetEntry {
  cache: string;
  name: string;
  /** sha256 of the master file as published (what a peer's bytes are verified against). */
  sha256: string;
  size: number;
  /** The digest of the bytes as they came from the origin (the caller's checksum is compared with it). */
  checksum: { algo: ChecksumAlgo; value: string };
  format?: string;
  virtualSize?: number;
  converted: boolean;
  /** The master is the download decompressed (`checksum` covers the download); absent: unknown. */
  decompressed?: boolean;
}

/** A peer that holds an image, as the fleet's directory records it. */
export interface PeerOffer extends FleetEntry {
  host: string;
  /** Downloads the peer's master (resumable with Range). */
  source: ImageSource;
}

/** The fleet-wide single flight: the owner downloads from the origin; the others come back for offers. */
export type FleetClaim = { owner: true; release(): Promise<void> } | { owner: false };

/** Why a peer was skipped. `unverified`: its bytes are not what it published (counted against it). */
export type PeerFailure = 'unverified' | 'failed';

/**
 * The hosts of a fleet sharing verified masters (the engine knows no Redis: apps/worker gives it one). Each
 * method may fail (Redis away): the engine then goes to the origin, as without a fleet.
 */
export interface Fleet {
  /** Peers holding `identity`, best first (same group first); never this host. */
  offers(identity: ImageIdentity, signal?: AbortSignal): Promise<PeerOffer[]>;
  /**
   * Waits while another host downloads `identity` from the origin (its claim lives while it beats; a dead
   * holder's expires); resolves as owner when the claim is ours, else once the holder is done.
   */
  claim(identity: ImageIdentity, signal?: AbortSignal): Promise<FleetClaim>;
  published(identity: ImageIdentity, entry: FleetEntry): Promise<void>;
  evicted(cache: string, name: string): Promise<void>;
  /** A peer was skipped (logged and counted by the fleet). */
  peerFailed(offer: PeerOffer, reason: PeerFailure, message: string): void;
}

/** Rounds of "offers, then wait for the holder" before a fetch goes to the origin whatever the others do. */
const MAX_ROUNDS = 5;
/**
 * How long a fetch waits, in all, for peers that hold the image but have no upload slot free (503 +
 * Retry-After): a busy peer is still nearer than the origin, which would undo the single flight.
 */
const BUSY_WAIT_MS = 10 * 60_000;

/** What a fleet download got: the bytes, and the peer they came from (undefined: the origin). */
export interface FleetDownload {
  dl: Downloaded;
  peer?: PeerOffer;
  /** The checksum of the bytes as they came from the origin (a peer's: verified, or vouched by the directory). */
  checksum?: { algo: ChecksumAlgo; value: string };
}

export interface FlightOptions {
  fleet?: Fleet;
  cache: string;
  name: string;
  info: ImageInfo;
  /** The caller's checksum and the one the source vouches for: a peer's bytes must satisfy both. */
  checks: readonly ExpectedChecksum[];
  signal: AbortSignal;
  logger: Logger;
}

/**
 * One miss through the fleet (spec: issue #12): peers holding the same identity first, each verified against
 * the sha256 its host published and the caller's checksum; then the fleet-wide claim, whose owner goes to the
 * origin and the others to the owner once it has published. Nothing unverified gets past `download`.
 */
export class FleetFlight {
  private claim?: FleetClaim & { owner: true };
  private readonly tried = new Set<string>();
  /** The longest Retry-After of the peers found busy in the last round (undefined: none was). */
  private busyFor?: number;

  private constructor(
    private readonly o: FlightOptions & { fleet: Fleet },
    readonly identity: ImageIdentity,
  ) {}

  /** A flight for this miss, or undefined when the image has no identity the fleet can share (no validator). */
  static for(o: FlightOptions): FleetFlight | undefined {
    const validator = o.info.immutable ? 'immutable' : o.info.validator;
    if (!o.fleet || o.info.noCache || !validator) return undefined;
    return new FleetFlight({ ...o, fleet: o.fleet }, { name: o.name, validator });
  }

  /** What the master's metadata records for the fleet: its sha256 (see `digest`) and its identity's validator. */
  async describe(file: string, downloaded?: string): Promise<{ sha256: string; validator: string }> {
    return { sha256: await this.digest(file, downloaded), validator: this.identity.validator };
  }

  /**
   * The image into `file`: from a peer when one verifies, else from the origin (`origin` downloads it, with
   * sha256 among its digests). `fromPeer` downloads a peer's source into `file`.
   */
  async download(
    file: string,
    origin: () => Promise<Downloaded>,
    fromPeer: (source: ImageSource, algos: ChecksumAlgo[], size: number) => Promise<Downloaded>,
    /**
     * Runs the wait for another host's download without what this fetch holds for downloading (its download
     * slot): slots held by waiters could otherwise starve the hosts they wait for, and those theirs.
     */
    idle: <T>(wait: () => Promise<T>) => Promise<T> = (wait) => wait(),
  ): Promise<FleetDownload> {
    const busyUntil = Date.now() + BUSY_WAIT_MS;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const got = await this.tryPeers(file, fromPeer);
      if (got) return got;
      if (this.busyFor !== undefined && Date.now() < busyUntil) {
        const ms = this.busyFor;
        await idle(() => sleep(ms, this.o.signal));
        this.o.signal.throwIfAborted();
        round--; // a round of busy peers is not one of waiting for a holder
        continue;
      }
      const claim = await this.ask<FleetClaim>(
        () => idle(() => this.o.fleet.claim(this.identity, this.o.signal)),
        {
          owner: true,
          release: async () => undefined,
        },
      );
      if (claim.owner) {
        this.claim = claim;
        // A holder may have published (and released) between our look at the offers and our claim.
        const late = await this.tryPeers(file, fromPeer);
        if (late) {
          await this.release();
          return late;
        }
        break;
      }
    }
    // A peer's partial is not continued from the origin: downloadTo starts over for another source.
    return { dl: await origin() };
  }

  /** sha256 of the master about to be published: the download's when it is those bytes, else read again. */
  async digest(file: string, downloaded?: string): Promise<string> {
    return downloaded ?? (await hashFile(file, 'sha256', { signal: this.o.signal }));
  }

  /** Records the published master in the directory (the claim, released after, lets waiting hosts take it). */
  async published(e: FleetEntry): Promise<void> {
    const entry: FleetEntry = {
      cache: e.cache,
      name: e.name,
      sha256: e.sha256,
      size: e.size,
      checksum: e.checksum,
      format: e.format,
      virtualSize: e.virtualSize,
      converted: e.converted,
      decompressed: e.decompressed,
    };
    await this.ask(() => this.o.fleet.published(this.identity, entry), undefined);
  }

  /** Gives the claim up (after publishing, or on failure: a waiting host then takes it over). */
  async release(): Promise<void> {
    const claim = this.claim;
    this.claim = undefined;
    if (claim) await this.ask(() => claim.release(), undefined);
  }

  private async tryPeers(
    file: string,
    fromPeer: (source: ImageSource, algos: ChecksumAlgo[], size: number) => Promise<Downloaded>,
  ): Promise<FleetDownload | undefined> {
    const offers = await this.ask(() => this.o.fleet.offers(this.identity, this.o.signal), []);
    this.busyFor = undefined;
    for (const offer of offers) {
      if (this.tried.has(offer.host)) continue;
      this.tried.add(offer.host);
      // A peer that recorded another origin digest of the caller's algorithm holds something else.
      if (
        this.o.checks.some((c) => c.algo === offer.checksum.algo && !sameHex(c.value, offer.checksum.value))
      )
        continue;
      this.o.signal.throwIfAborted();
      let dl: Downloaded;
      try {
        const algos: ChecksumAlgo[] = ['sha256', ...this.o.checks.map((c) => c.algo)];
        dl = await fromPeer(offer.source, algos, offer.size);
      } catch (err) {
        // Ours, not the peer's: cancelled, the disk (full, I/O), the image's bound.
        if (this.o.signal.aborted || !isPeerFailure(err)) throw err;
        const retryAfterMs = busyRetryAfter(err);
        if (retryAfterMs !== undefined) {
          // Alive, every upload slot taken: asked again after a while, not skipped.
          this.tried.delete(offer.host);
          this.busyFor = Math.max(this.busyFor ?? 0, Math.min(retryAfterMs, 10_000));
          this.o.logger.info(
            { master: this.o.name, peer: offer.host, retryAfterMs },
            'peer busy: asked again later',
          );
          continue;
        }
        this.skip(offer, 'failed', (err as Error).message);
        continue;
      }
      if (dl.size !== offer.size || !sameHex(dl.digests.sha256!, offer.sha256)) {
        await discard(file);
        this.skip(offer, 'unverified', `got ${dl.size} bytes of sha256 ${dl.digests.sha256}`);
        continue;
      }
      // The caller's checksum covers the bytes as they came from the origin: the master's own bytes when it
      // was not converted, else what its host recorded of them (the directory is trusted, the peer's disk not).
      const unmet = this.o.checks.find(
        (c) => !sameHex(dl.digests[c.algo] ?? '', c.value) && !sameChecksum(c, offer.checksum),
      );
      if (unmet) {
        await discard(file);
        this.o.logger.info(
          { master: this.o.name, peer: offer.host, algo: unmet.algo },
          "peer's image can't be verified against the checksum asked: skipped",
        );
        continue;
      }
      const checksum = this.o.checks.find((c) => c.algo === offer.checksum.algo) ?? offer.checksum;
      this.o.logger.info(
        { master: this.o.name, peer: offer.host, bytes: dl.size },
        'image taken from a peer',
      );
      return { dl, peer: offer, checksum: { algo: checksum.algo, value: checksum.value.toLowerCase() } };
    }
    return undefined;
  }

  private skip(offer: PeerOffer, reason: PeerFailure, message: string): void {
    this.o.logger.warn(
      { cache: this.o.cache, master: this.o.name, peer: offer.host, reason, message },
      `peer ${offer.host} skipped: ${reason === 'unverified' ? 'its bytes do not verify' : message}`,
    );
    try {
      this.o.fleet.peerFailed(offer, reason, message);
    } catch {
      // counting is best effort
    }
  }

  /** A fleet call; when the fleet fails (Redis away), `fallback`: the miss goes on as without a fleet. */
  private async ask<T>(call: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (this.o.signal.aborted) throw err;
      this.o.logger.warn({ master: this.o.name, err: (err as Error).message }, 'fleet unavailable');
      return fallback;
    }
  }
}

/** A download error the peer answers for (its status, its connection, its pace), as opposed to ours. */
function isPeerFailure(err: unknown): boolean {
  return (
    err instanceof ImageCacheError &&
    !(err instanceof ImageTooLarge) &&
    !(err instanceof InsufficientDiskSpace) &&
    !(err instanceof OperationAborted)
  );
}

/** A peer's "no upload slot free now" (503 with Retry-After): its wait, in ms. */
function busyRetryAfter(err: unknown): number | undefined {
  if (!(err instanceof ImageCacheError) || err.details.status !== 503) return undefined;
  const ms = err.details.retryAfterMs;
  return typeof ms === 'number' ? Math.max(100, ms) : undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

function sameHex(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function sameChecksum(c: ExpectedChecksum, recorded: { algo: string; value: string }): boolean {
  return c.algo === recorded.algo && sameHex(c.value, recorded.value);
}

/** Removes a download and its resume state (bytes that must not be continued). */
async function discard(file: string): Promise<void> {
  await fs.promises.rm(file, { force: true });
  await fs.promises.rm(file + '.state.json', { force: true });
}

/**
 * The masters of a folder published with a fleet (their metadata records sha256 and validator) that are still
 * the file published: what a host tells the fleet it holds when it joins (after a restart, or a Redis that lost
 * the directory).
 */
export async function publishedMasters(
  folder: CacheFolder,
  cache: string,
): Promise<{ identity: ImageIdentity; entry: FleetEntry }[]> {
  const out: { identity: ImageIdentity; entry: FleetEntry }[] = [];
  const names = await fs.promises.readdir(folder.masterDir).catch(() => [] as string[]);
  for (const name of names) {
    const meta = await readJsonOrUndefined<MasterMeta>(folder.metaPath(name));
    if (!meta?.sha256 || !meta.validator || !meta.identity) continue;
    const st = lstatOrUndefined(folder.masterPath(name));
    if (!st?.isFile() || !sameIdentity(meta.identity, st)) continue;
    out.push({
      identity: { name, validator: meta.validator },
      entry: {
        cache,
        name,
        sha256: meta.sha256,
        size: st.size,
        checksum: meta.checksum,
        format: meta.format,
        virtualSize: meta.virtualSize,
        converted: meta.converted,
        decompressed: meta.decompressed,
      },
    });
  }
  return out;
}
