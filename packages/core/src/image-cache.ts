import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  parseChecksum,
  verifyDigest,
  type ChecksumAlgo,
  type ExpectedChecksum,
  type ParsedChecksum,
} from '@imagecache/checksum';
import {
  ImageCacheError,
  InsufficientDiskSpace,
  OperationAborted,
  UsageError,
  withHref,
} from '@imagecache/errors';
import { convertedByName, DEFAULT_PERMITTED_FORMATS, readBackAfterDownload } from '@imagecache/formats';
import {
  fetchChecksumFile,
  resolveSource,
  type ImageAuth,
  type ImageInfo,
  type ImageSource,
  type SourceOptions,
} from '@imagecache/sources';
import type { CacheFetchOptions, CacheHandle, CacheListing } from './cache-handle';
import { CacheFolder } from './cache-folder';
import { CacheEvents, type CacheEventName, type CacheListener, type CacheUsage } from './cache-events';
import { cleanUpFolder, scanFolder, type CleanUpResult } from './clean-up';
import { DestinationPolicy, type CheckedDestination } from './destination-policy';
import { EarlyDestination } from './early-destination';
import { deviceOf, freeSpace } from './disk-space';
import { backOff, downloadTo, worthRetrying, type DownloadOptions, type Downloaded } from './download';
import { ProgressClock, runStage, type StageSink } from './fetch-stage';
import { FleetFlight, type FleetDownload, type Fleet } from './fleet';
import { isDestFresh, isMasterFresh } from './freshness';
import { silentLogger, type Logger } from './logger';
import { identityOf, sameIdentity } from './master-identity';
import { CONVERTED_SUFFIX, isMasterName, masterName } from './master-name';
import { FailureNotes } from './failure-notes';
import { FolderLocks } from './master-locks';
import { DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL, defaultLimiter, type ImageCacheOptions } from './options';
import { KnownMetas } from './known-metas';
import { lstatOrUndefined, readJsonOrUndefined, statOrUndefined, unlinkIfThere } from './metadata-io';
import { PinnedFolder } from './pinned-folder';
import { placeFile, sweepPlaceTemps, type PlaceMethod } from './place-file';
import { prepareImage, type PreparedImage } from './prepare-image';
import type { FetchResult, MasterMeta } from './result';
import type { DownloadLimiter } from './host-slots';
import type { CacheRegistry } from './cache-registry';
import { reservedOn, reserve, type Reservation } from './space-ledger';
import { WORK_FILE, WorkArea } from './work-area';
import {
  byteBound,
  checkSize,
  HEADROOM_BYTES,
  maxWriteBytes,
  needsEviction,
  type SpaceBudget,
} from './write-bound';

/** A handle's options (the request's, from @imagecache/contract), with what only the engine takes. */
export interface FetchOptions extends Omit<CacheFetchOptions, 'auth'> {
  /** Credentials for this image only; never logged. */
  auth?: ImageAuth;
  /**
   * After a transient failure, keep the partial download in the work area so the next attempt continues it
   * with Range (the distributed worker sets it while the job has attempts left). Default false: every failure
   * leaves nothing behind. A function is asked at the time of the failure.
   */
  keepPartial?: boolean | (() => boolean);
}

/** Everything one fetch works with, resolved once; its stages report to it (durations, progress). */
interface FetchContext extends StageSink {
  source: ImageSource;
  info: ImageInfo;
  name: string;
  masterPath: string;
  /** The destination as checked: its folder canonical (symlinks resolved), placed through a PinnedFolder. */
  target: CheckedDestination;
  destPath: string;
  checksum: ParsedChecksum;
  opts: FetchOptions;
  durations: FetchResult['durations'];
  started: number;
  /** When this fetch began to wait for the master's lock (ms since the epoch). */
  waitingSince?: number;
  /** The destination's folder pinned while the HEAD was out, for a hit's place() (which takes it). */
  early?: EarlyDestination;
}

/** One miss under the master's lock: what it holds, released whatever the outcome. */
interface MissRun {
  ctx: FetchContext;
  /** The caller's signal and the lock's (lost: another process may take the master). */
  signal: AbortSignal;
  /** The download slot. */
  release?: () => void;
  reservation?: Reservation;
  workDir?: string;
  /** Leave the work directory for the next attempt (a transient failure, keepPartial asked). */
  keep: boolean;
  /** Published as the master: what is left in the work directory are other names of it. */
  published?: boolean;
  /** The miss through the fleet (a fleet is set and the image has an identity), and what it got. */
  flight?: FleetFlight;
  fromFleet?: FleetDownload;
}

/** What a download is checked against and bounded by, settled before its first byte. */
interface DownloadPlan {
  /** The caller's checksum and the one the source vouches for: each must match. */
  checks: ExpectedChecksum[];
  /** The algorithm the master's recorded checksum is in. */
  algo: ExpectedChecksum['algo'];
  bound: ReturnType<typeof byteBound>;
}

const CLEANUP_LOCK = '.cleanup';
/** usage() counts every file: which masters a fetch holds doesn't matter to it. */
const NOT_BUSY: ReadonlySet<string> = new Set();

/** What a cold miss knows of its image until it asks the source under its lock (coldMiss replaces it). */
const COLD: ImageInfo = { noCache: false, immutable: false, fileName: '' };

/**
 * One master folder: fetches images through it, hard-linked (or copied) to their destinations, and evicts
 * masters by TTL and size. Safe to share between processes on one host (file locks).
 */
export class ImageCache implements CacheHandle {
  readonly name: string;
  readonly masterDir: string;
  readonly cacheSize: number;
  readonly cacheTtl: number;
  readonly forceRaw: boolean;
  readonly validate: boolean;
  readonly priority: number;
  readonly folder: CacheFolder;
  private readonly locks: FolderLocks;
  private readonly failures: FailureNotes;
  private readonly work: WorkArea;
  private readonly logger: Logger;
  private readonly limiter: DownloadLimiter;
  private readonly sourceOptions: SourceOptions;
  private readonly destinations: DestinationPolicy;
  private readonly events: CacheEvents;
  private readonly metas = new KnownMetas();
  private started?: Promise<void>;
  /** start() has succeeded (a fetch then skips waiting for it). */
  private ready = false;
  private registry?: CacheRegistry;
  /** The post-miss clean-up waiting to start (every miss meanwhile joins it), and the one running. */
  private queuedCleanUp?: Promise<unknown>;
  private runningCleanUp?: Promise<unknown>;
  private dev?: number;
  private fleet?: Fleet;

  constructor(private readonly options: ImageCacheOptions) {
    if (!path.isAbsolute(options.masterDir)) {
      throw new UsageError(`masterDir must be an absolute path, got ${options.masterDir}`);
    }
    this.name = options.name ?? 'default';
    this.masterDir = path.resolve(options.masterDir);
    this.cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    this.cacheTtl = options.cacheTtl ?? DEFAULT_CACHE_TTL;
    this.forceRaw = options.forceRaw ?? true;
    this.validate = options.validate ?? true;
    this.priority = options.priority ?? 50;
    this.logger = options.logger ?? silentLogger;
    this.limiter = options.limiter ?? defaultLimiter();
    this.fleet = options.fleet;
    this.sourceOptions = options.sources ?? {};
    this.events = new CacheEvents(this.logger);
    this.folder = new CacheFolder(this.masterDir);
    this.locks = new FolderLocks(this.folder.lockDir, this.logger);
    this.failures = new FailureNotes(this.folder.lockDir);
    this.work = new WorkArea(this.folder, this.logger, this.locks);
    this.destinations = new DestinationPolicy(
      { allowedRoots: options.destinations?.allowedRoots, createDirs: options.createDestDirs },
      // Every master folder of the host, not only this one: a destination in another cache's folder would
      // replace a master that cache's hits serve.
      () => (this.registry?.caches ?? [this]).map((c) => c.folder.canonicalDir()),
    );
  }

  /**
   * Listens to what the cache does: `fetch` (every fetch that ends: hit, miss or error, with its result or
   * error and durations), `evict` (each master a clean-up removes: name, allocated size, reason) and `usage`
   * (the folder's allocated bytes and file count, after each clean-up and each `usage()`). Listeners run
   * synchronously and must be quick; one that throws is logged, never fails the cache's work. Returns the
   * function that removes the listener.
   */
  on<K extends CacheEventName>(event: K, listener: CacheListener<K>): () => void {
    return this.events.on(event, listener);
  }

  off<K extends CacheEventName>(event: K, listener: CacheListener<K>): void {
    this.events.off(event, listener);
  }

  /**
   * The registry whose caches are cleaned when a conversion needs room (CacheRegistry.register sets it).
   * Without one, only this cache is cleaned.
   */
  useRegistry(registry: CacheRegistry): void {
    this.registry = registry;
  }

  /** The fleet this cache shares masters with from now on (a worker sets it once it has reached Redis). */
  useFleet(fleet: Fleet | undefined): void {
    this.fleet = fleet;
  }

  /** Creates the folder if needed and sweeps work left by crashed processes; done once, on first use. */
  start(): Promise<void> {
    this.started ??= this.folder
      .ensure()
      .then(() => this.work.sweep())
      .then(() => {
        this.ready = true;
      })
      .catch((err) => {
        this.started = undefined;
        throw err;
      });
    return this.started;
  }

  /** Makes `href` appear at `dest` (spec.md §2); the outcome is reported to `fetch` listeners. */
  async fetchImage(href: string, dest: string, opts: FetchOptions = {}): Promise<FetchResult> {
    const started = performance.now();
    const durations: FetchResult['durations'] = { total: 0 };
    try {
      const result = await this.runFetch(href, dest, opts, started, durations);
      if (this.events.has('fetch')) {
        this.events.emit('fetch', { cache: this.name, outcome: result.cacheHit ? 'hit' : 'miss', result });
      }
      return result;
    } catch (err) {
      if (this.events.has('fetch')) {
        durations.total = performance.now() - started;
        const code = err instanceof ImageCacheError ? err.code : ImageCacheError.code;
        this.events.emit('fetch', { cache: this.name, outcome: 'error', error: err, code, durations });
      }
      throw err;
    }
  }

  /** fetchImage's work: resolve, a hit, or a miss under the master's lock and the clean-up after it. */
  private async runFetch(
    href: string,
    dest: string,
    opts: FetchOptions,
    started: number,
    durations: FetchResult['durations'],
  ): Promise<FetchResult> {
    const forceRaw = opts.forceRaw ?? this.forceRaw;
    if (opts.expectedFormat !== undefined && !this.validate) {
      throw new UsageError(`cache ${this.name} does not inspect images: expectedFormat can't be checked`);
    }
    const target = this.destinations.check(dest);
    const destPath = target.path;
    const checksum = parseChecksum(
      { checksum: opts.expectedChecksum, algo: opts.expectedChecksumAlgo },
      { allowMd5: !this.options.disallowMd5 },
    );
    const source = await resolveSource(
      href,
      opts.auth === undefined ? this.sourceOptions : { ...this.sourceOptions, auth: opts.auth },
      opts.signal,
    );
    // Everything the caller gave is valid: only now may anything be written.
    if (target.createFolder) await this.destinations.createFolder(target);
    const name = masterName(href, source.imageId, forceRaw);
    const sink: StageSink = { durations, onProgress: opts.onProgress };
    // No master to be fresh or not (nor a fleet that may have one): nothing to ask before the lock, and under
    // it, the source is asked with the download itself (coldMiss).
    // (An unusable folder reads as "no master": its set-up, below, says why.)
    const cold = !this.fleet && !fs.existsSync(this.folder.masterPath(name));
    const shown = cold ? undefined : runStage(sink, 'resolve', () => source.show({ signal: opts.signal }));
    // The HEAD is out: meanwhile, what a hit will need of the destination (early-destination.ts).
    const early = cold ? undefined : EarlyDestination.look(target);
    try {
      // The folder's first-use set-up runs while the source is asked (a fresh process's first fetch waited
      // for one, then the other). Both settle before the fetch goes on or fails: nothing of it goes on after the
      // call, and an unusable folder is the error, as when it was set up first.
      const [asked, setUp] = await Promise.allSettled([shown, this.ready ? undefined : this.start()]);
      if (setUp.status === 'rejected') throw setUp.reason;
      if (asked.status === 'rejected') throw asked.reason;
      const info = asked.value ?? COLD;
      const ctx: FetchContext = {
        ...sink,
        source,
        info,
        name,
        masterPath: this.folder.masterPath(name),
        target,
        destPath,
        checksum,
        opts,
        started,
        early,
      };

      if (!cold && !info.noCache) {
        const hit = await this.tryHit(ctx);
        if (hit) return hit;
      }
      // A miss places at its end, pinning the folder then.
      ctx.early = undefined;
      early?.close();
      opts.onProgress?.({ stage: 'wait' });
      const waitStart = performance.now();
      ctx.waitingSince = Date.now();
      const result = await this.locks.withLock(
        name,
        (lost) => {
          durations.wait = performance.now() - waitStart;
          return cold ? this.coldMiss(ctx, lost) : this.miss(ctx, lost);
        },
        opts.signal,
      );
      if (!result.cacheHit && !ctx.info.noCache) {
        await runStage(sink, 'evict', () => this.cleanUpAfterMiss());
      }
      durations.total = performance.now() - started;
      return result;
    } finally {
      early?.close();
      // A GET that show() kept for open() (HEAD refused) is never left holding its connection.
      source.close?.();
    }
  }

  /** Evicts masters by TTL, then by size, or until `amount` bytes are freed (spec.md §8). */
  async cleanUp(amount?: number): Promise<CleanUpResult> {
    await this.start();
    return this.locks.withLock(CLEANUP_LOCK, async () => {
      // One listing for both: the sweep's look for leftovers (Ironic's among them) and the scan.
      const entries = await fs.promises.readdir(this.masterDir, { withFileTypes: true });
      await this.work.sweep({ masterEntries: entries.map((e) => e.name) });
      const { result, count } = await cleanUpFolder({
        entries,
        masterDir: this.masterDir,
        metaDir: this.folder.metaDir,
        evictDir: this.folder.workDir,
        cacheSize: this.cacheSize,
        ttlSeconds: this.cacheTtl,
        amount,
        busy: await this.locks.heldNames(),
        now: Date.now(),
        logger: this.logger,
      });
      this.logger.debug({ cache: this.name, totalSize: result.totalSize }, 'clean-up ran');
      await this.fleetForget(result.removed.map((r) => r.name));
      if (result.removed.length > 0) {
        this.logger.info(
          { cache: this.name, removed: result.removed.length, freed: result.freed },
          'evicted masters',
        );
      }
      for (const m of result.removed) this.events.emit('evict', { cache: this.name, ...m });
      this.events.emit('usage', { cache: this.name, totalSize: result.totalSize, count });
      return result;
    });
  }

  /** Masters this host no longer serves leave the fleet's directory (best effort: a peer's 404 is skipped). */
  private async fleetForget(names: string[]): Promise<void> {
    for (const name of names) {
      await this.fleet
        ?.evicted(this.name, name)
        .catch((err: Error) =>
          this.logger.warn({ cache: this.name, master: name, err: err.message }, 'fleet unavailable'),
        );
    }
  }

  /**
   * What the master folder holds now: the allocated bytes of its files (what counts towards `cacheSize`) and
   * their number, foreign files included (work areas and metadata are folders: not counted). Also reported
   * to `usage` listeners. Only reads: a folder not made yet is an error, not made by asking.
   */
  async usage(): Promise<CacheUsage> {
    const scan = await scanFolder(this.masterDir, this.folder.metaDir, NOT_BUSY);
    const usage = { cache: this.name, totalSize: scan.totalSize, count: scan.count };
    this.events.emit('usage', usage);
    return usage;
  }

  /**
   * The clean-up after a miss, coalesced: a miss that finds one queued joins it; one that finds one running
   * queues the next (which sees its master: the running one may have scanned before it was published). So a
   * burst of misses runs two clean-ups of the folder, not one each.
   */
  private cleanUpAfterMiss(): Promise<unknown> {
    if (this.queuedCleanUp) return this.queuedCleanUp;
    const next: Promise<unknown> = (this.runningCleanUp ?? Promise.resolve()).then(() => {
      if (this.queuedCleanUp === next) this.queuedCleanUp = undefined;
      const run = this.cleanUp().catch((err) =>
        this.logger.warn({ err, cache: this.name }, 'clean-up after fetch failed'),
      );
      this.runningCleanUp = run;
      return run.finally(() => {
        if (this.runningCleanUp === run) this.runningCleanUp = undefined;
      });
    });
    this.queuedCleanUp = next;
    return next;
  }

  /**
   * Allocated bytes of this cache's masters that clean-up could evict now (one link, no fetch holding them).
   * Counted before a write, to refuse an image that can't fit whatever is evicted.
   */
  async evictableBytes(): Promise<number> {
    await this.start();
    const scan = await scanFolder(this.masterDir, this.folder.metaDir, await this.locks.heldNames());
    return scan.candidates.reduce((n, c) => n + c.size, 0);
  }

  /**
   * What a write of `size` bytes may take now: the cache's size, the free bytes, and (only when `size` needs
   * more than is free) what eviction could add (spec.md §4).
   */
  private async budget(size?: number): Promise<SpaceBudget> {
    const dev = await this.device();
    const raw = await freeSpace(this.masterDir);
    let evictable: number | undefined;
    if (needsEviction({ cacheSize: this.cacheSize, free: raw - reservedOn(dev) }, size)) {
      evictable = this.registry
        ? await this.registry.evictableBytes(this.masterDir)
        : await this.evictableBytes();
    }
    // Read after the last await: a caller that reserves right away can't race another doing the same.
    const reserved = reservedOn(dev);
    return { cacheSize: this.cacheSize, free: Math.max(0, raw - reserved), reserved, evictable };
  }

  /**
   * The budget of a write of `size` bytes (when known): refused when it can't fit whatever is evicted, room
   * made first when it needs more than is free (nothing is evicted for an image that is then refused).
   */
  private async room(
    what: 'declared' | 'decompressed',
    size: number | undefined,
    href: string,
    /** Hold the bytes in the space ledger (false: a tool's output, counted in the free space as it grows). */
    hold = true,
  ): Promise<{ budget: SpaceBudget; reservation?: Reservation }> {
    let b = await this.budget(size);
    checkSize(b, what, size, href, this.masterDir);
    if (size !== undefined && size > maxWriteBytes(b)) {
      await this.makeRoom(this.masterDir, size + HEADROOM_BYTES + (b.reserved ?? 0));
      b = await this.budget();
    }
    // Promised to this write at once (no await since the budget was read): concurrent misses see it taken.
    const reservation = !hold || size === undefined ? undefined : reserve(this.dev!, size);
    return { budget: b, reservation };
  }

  /** The device of the master folder (what the space ledger is kept by). */
  private async device(): Promise<number> {
    this.dev ??= await deviceOf(this.masterDir);
    return this.dev;
  }

  /** The masters in the folder, with what is known of each; files that are not masters are marked foreign. */
  async list(): Promise<MasterEntry[]> {
    await this.start();
    const entries = await fs.promises.readdir(this.masterDir, { withFileTypes: true });
    const out: MasterEntry[] = [];
    for (const e of entries) {
      if (!e.isFile()) continue;
      const st = await fs.promises.lstat(path.join(this.masterDir, e.name)).catch(() => undefined);
      if (!st?.isFile()) continue;
      const meta = this.readMeta(e.name);
      const foreign = !isMasterName(e.name) && !fs.existsSync(this.folder.metaPath(e.name));
      out.push({
        name: e.name,
        path: path.join(this.masterDir, e.name),
        size: st.size,
        allocated: st.blocks * 512,
        ...(foreign ? { foreign: true } : {}),
        links: st.nlink,
        lastUsed: new Date(Math.max(st.mtimeMs, st.atimeMs, st.ctimeMs)),
        href: meta?.href,
        format: meta?.format,
        checksum: meta?.checksum,
      });
    }
    return out.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  }

  /** The masters (list()) with the cache's name and folder: what `ls` and a list job answer. */
  async listing(): Promise<CacheListing> {
    return { cache: this.name, masterDir: this.masterDir, masters: await this.list() };
  }

  /** Bytes available on the master folder's filesystem. */
  async freeSpace(): Promise<number> {
    await this.start();
    return freeSpace(this.masterDir);
  }

  /**
   * The hit path (spec.md §2.5–2.7): no lock; a master that vanishes before the link sends us to the miss path.
   * A master is served only while it is the file recorded at publish (same device, inode, size, mtime); one
   * that changed, or has no record (adopted from an Ironic folder), is left to the miss path, which under the
   * master's lock (`signal` given) sets it aside, or verifies the adopted one once.
   */
  private async tryHit(ctx: FetchContext, locked?: AbortSignal): Promise<FetchResult | undefined> {
    const master = lstatOrUndefined(ctx.masterPath);
    if (!master?.isFile() || !isMasterFresh(ctx.info, master)) return undefined;
    let meta = (!locked && this.metas.get(ctx.name, master)) || this.readMeta(ctx.name);
    if (!meta?.identity) {
      if (!locked) return undefined;
      meta = await this.adopt(ctx, master, meta, locked);
      if (!meta) return undefined;
    } else if (!sameIdentity(meta.identity, master)) {
      if (locked)
        await this.setAside(ctx, 'it changed since it was published (device, inode, size or mtime)');
      return undefined;
    }
    if (!this.sameChecksum(ctx.checksum, meta)) return undefined;
    let placedBy: FetchResult['placedBy'] = 'already';
    try {
      placedBy = await this.place(ctx, ctx.masterPath, (dest) => !!dest && isDestFresh(dest, master));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(ctx.masterPath))
        return undefined;
      throw await this.wrap(err, ctx);
    }
    ctx.durations.total = performance.now() - ctx.started;
    return {
      cacheHit: true,
      masterPath: ctx.masterPath,
      destPath: ctx.destPath,
      placedBy,
      format: meta.format,
      virtualSize: meta.virtualSize,
      size: master.size,
      converted: meta.converted ?? false,
      checksum: { algo: meta.checksum.algo, value: meta.checksum.value },
      bytesDownloaded: 0,
      durations: ctx.durations,
    };
  }

  /**
   * Puts `src` at the destination, through its pinned folder: the folder is proved to be the one checked, and
   * the link, copy and rename all happen in it (a symlink swapped into its path meanwhile redirects nothing;
   * a destination name that is itself a symlink is replaced, never followed). `fresh` says, from the lstat of
   * what is there, that nothing needs doing.
   */
  private async place(
    ctx: FetchContext,
    src: string,
    fresh: (dest: fs.Stats | undefined) => boolean = () => false,
    sweep = false,
  ): Promise<PlaceMethod | 'already'> {
    // Pinned while the HEAD was out (a hit), else now; used once.
    const early = ctx.early;
    ctx.early = undefined;
    const pinned = early ? early.pinned : PinnedFolder.open(ctx.target.folder);
    try {
      // A miss also clears the temporaries a crash left in this folder (a hit stays a few syscalls).
      if (sweep) await sweepPlaceTemps(pinned.entry('.'));
      const dest = pinned.entry(ctx.target.name);
      if (!early?.absent && fresh(lstatOrUndefined(dest))) return 'already';
      return await runStage(ctx, 'link', () => placeFile(src, dest));
    } finally {
      if (early) early.close();
      else pinned.close();
    }
  }

  /** A master that is no longer what was verified goes (under its lock); the fetch then downloads it again. */
  private async setAside(ctx: FetchContext, why: string): Promise<void> {
    this.logger.warn(
      { cache: this.name, master: ctx.name, reason: why },
      `master ${ctx.name} set aside: ${why}; fetching it again`,
    );
    await fs.promises.rm(this.folder.metaPath(ctx.name), { force: true });
    await fs.promises.rm(ctx.masterPath, { force: true });
  }

  /**
   * A master without metadata (an adopted Ironic folder, or a crash between publish and its metadata) or with
   * metadata of an older version (no identity) is verified once, under its lock, against the caller's checksum
   * and what the source vouches for (else the older metadata's checksum), and the format policy; its metadata
   * is then written. With nothing to verify it against (no checksum given, a `.converted` master whose bytes
   * no download checksum covers), it is set aside and fetched again.
   */
  private async adopt(
    ctx: FetchContext,
    master: fs.Stats,
    previous: MasterMeta | undefined,
    signal: AbortSignal,
  ): Promise<MasterMeta | undefined> {
    const converted = ctx.name.endsWith(CONVERTED_SUFFIX) || previous?.converted === true;
    const expected = converted ? undefined : await this.expectedChecksum(ctx, signal);
    const vouched = converted ? undefined : this.vouchedChecksum(ctx);
    const checks = [expected, vouched].filter((c): c is ExpectedChecksum => c !== undefined);
    // Metadata of an older version (no identity) still says what was downloaded: enough to check the bytes.
    if (checks.length === 0 && previous && !converted) checks.push(previous.checksum);
    // Loaded here: adopting a master is rare.
    const { verifyAdoptedMaster } = await import('./adopt-master');
    const verdict = await verifyAdoptedMaster(ctx.masterPath, {
      checks,
      validate: this.validate,
      zstd: this.options.zstd ?? true,
      permitted: this.options.permittedFormats ?? DEFAULT_PERMITTED_FORMATS,
      expectedFormat: ctx.opts.expectedFormat ?? ctx.info.diskFormat,
      signal,
    });
    const after = lstatOrUndefined(ctx.masterPath);
    if (verdict.ok && (!after || !sameIdentity(identityOf(master), after))) {
      await this.setAside(ctx, 'it changed while it was being verified');
      return undefined;
    }
    if (!verdict.ok) {
      await this.setAside(ctx, `it is not verified yet, and can't be: ${verdict.reason}`);
      return undefined;
    }
    const first = checks[0]!;
    const meta: MasterMeta = {
      href: ctx.source.safeHref,
      checksum: { algo: first.algo, value: first.value.toLowerCase() },
      size: master.size,
      format: verdict.format,
      virtualSize: verdict.virtualSize,
      converted: false,
      decompressed: false, // verified as it is: the checksum covers the master's own bytes
      fetchedAt: previous?.fetchedAt ?? new Date().toISOString(),
      identity: identityOf(master),
    };
    const tmp = path.join(this.folder.metaDir, `.${ctx.name}.adopt-${process.pid}`);
    await fs.promises.writeFile(tmp, JSON.stringify(meta));
    await fs.promises.rename(tmp, this.folder.metaPath(ctx.name));
    this.logger.info({ cache: this.name, master: ctx.name }, 'adopted master verified');
    return meta;
  }

  /**
   * A miss that saw no master before its lock asks the source now. While there is still none (nor a partial
   * download to continue with Range), with the download's own request, once it has a download slot: an http GET
   * whose headers are the answer, its body kept unread for the download (no HEAD first, as Ironic's cold miss).
   * Else as any miss (another process published the master while this fetch waited: it may be a hit).
   */
  private async coldMiss(ctx: FetchContext, lost: AbortSignal): Promise<FetchResult> {
    await this.throwSharedFailure(ctx);
    // Any error here (a path through a file) means "look again the usual way", where it is reported as such.
    const partial = path.join(this.work.dirOf(ctx.name), WORK_FILE);
    if (!fs.existsSync(ctx.masterPath) && !fs.existsSync(partial)) return this.miss(ctx, lost, true);
    const signal = ctx.opts.signal ? AbortSignal.any([ctx.opts.signal, lost]) : lost;
    ctx.info = await runStage(ctx, 'resolve', () => ctx.source.show({ signal }));
    return this.miss(ctx, lost);
  }

  /**
   * The miss path, under the master's lock (spec.md §2.8): a last look for a master, then download, verify,
   * prepare, publish and link, in a work directory of its own with a download slot and the room it needs.
   * `unasked`: a cold miss with nothing to look at, whose source is asked with its download (coldMiss).
   */
  private async miss(ctx: FetchContext, lost: AbortSignal, unasked = false): Promise<FetchResult> {
    const run: MissRun = {
      ctx,
      signal: ctx.opts.signal ? AbortSignal.any([ctx.opts.signal, lost]) : lost,
      keep: false,
    };
    const settled = unasked ? undefined : await this.beforeMiss(run);
    if (settled) return settled;
    try {
      run.release = await this.limiter.acquire(run.signal);
      if (unasked) ctx.info = await this.askForDownload(run);
      run.workDir = await this.work.open(ctx.name);
      const file = path.join(run.workDir, WORK_FILE);
      const plan = await this.planDownload(run, file);
      const dl = await this.download(run, file, plan);
      const checksum = await runStage(ctx, 'verify', () => this.verify(ctx, plan, dl, run.fromFleet), {
        signal: run.signal,
      });
      const prepared = await this.prepare(run, file);
      const result = await this.finish(run, { file, dl, checksum, prepared });
      run.published = !ctx.info.noCache;
      return result;
    } catch (err) {
      throw await this.missFailed(run, err);
    } finally {
      run.reservation?.release();
      await run.flight?.release();
      if (run.workDir && !run.keep) await this.work.remove(run.workDir, run.published);
      run.release?.();
    }
  }

  /**
   * The source asked with the download's own request (show `forDownload`: its headers, the body kept for the
   * download), tried again as the download would be on a transient failure: at most `downloadRetries` + 1
   * requests, and a failure that ends them is the miss's (recorded for the fetches waiting on this master).
   */
  private async askForDownload(run: MissRun): Promise<ImageInfo> {
    const { ctx, signal } = run;
    const retries = this.options.downloadRetries ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        return await runStage(ctx, 'resolve', () => ctx.source.show({ signal, forDownload: true }));
      } catch (err) {
        if (signal.aborted || !worthRetrying(err, attempt, retries)) throw err;
        await backOff((this.options.retryDelayMs ?? 1000) * attempt, signal);
      }
    }
  }

  /**
   * What settles a miss before any download: a master another process published while we waited (a changed
   * one is set aside here), or the failure of the download this fetch waited for (its error, not a download
   * of our own: X4). A master the source changed since is removed.
   */
  private async beforeMiss(run: MissRun): Promise<FetchResult | undefined> {
    const { ctx } = run;
    if (!ctx.info.noCache) {
      const hit = await this.tryHit(ctx, run.signal);
      if (hit) return hit;
    }
    await this.throwSharedFailure(ctx);
    if (!ctx.info.noCache) await this.removeStaleMaster(ctx);
    return undefined;
  }

  /** The failure of the download this fetch waited for is its own (X4): no download of its own follows. */
  private async throwSharedFailure(ctx: FetchContext): Promise<void> {
    const shared = ctx.waitingSince && (await this.failures.since(ctx.name, ctx.waitingSince));
    if (shared) throw withHref(shared, ctx.source.href);
  }

  /**
   * Bounded before the first byte (spec.md §4): refused if it can't fit, room made if it needs it, the declared
   * size reserved. Then what the bytes must match: the caller's checksum (a checksum file is fetched now) and
   * what the source vouches for (an OCI digest, the image service's hash).
   */
  private async planDownload(run: MissRun, file: string): Promise<DownloadPlan> {
    const { ctx } = run;
    const href = ctx.source.href;
    const room = await this.room('declared', ctx.info.size, href);
    run.reservation = room.reservation;
    // A partial download kept by an earlier attempt is continued: its bytes are already counted as used.
    const partial = statOrUndefined(file)?.size ?? 0;
    const bound = byteBound(room.budget, 'body', maxWriteBytes(room.budget) + partial, href);
    const expected = await this.expectedChecksum(ctx, run.signal);
    const vouched = this.vouchedChecksum(ctx);
    const checks = [expected, vouched].filter((c): c is ExpectedChecksum => c !== undefined);
    return { checks, algo: expected?.algo ?? vouched?.algo ?? 'sha256', bound };
  }

  /**
   * The body into `file` (resumed when a partial one is there), hashed as it arrives. With a fleet: from a peer
   * that verifies, else from the origin once the fleet-wide claim is ours (fleet.ts).
   */
  private download(run: MissRun, file: string, plan: DownloadPlan): Promise<Downloaded> {
    const { ctx, signal } = run;
    const { info } = ctx;
    const flight = FleetFlight.for({
      fleet: this.fleet,
      cache: this.name,
      name: ctx.name,
      info,
      checks: plan.checks,
      signal,
      logger: this.logger,
    });
    run.flight = flight;
    const algos: ChecksumAlgo[] = [
      plan.algo,
      ...plan.checks.map((c) => c.algo),
      ...(flight ? ['sha256' as const] : []),
    ];
    const origin = () => this.downloadFrom(run, file, plan, ctx.source, algos, info.size);
    return runStage(
      ctx,
      'download',
      async () => {
        if (!flight) return origin();
        run.fromFleet = await flight.download(
          file,
          origin,
          (peer, a, size) => this.downloadFrom(run, file, plan, peer, a, size, 1),
          (wait) => this.idle(run, wait),
        );
        return run.fromFleet.dl;
      },
      { signal, progress: { stage: 'download', bytes: 0, totalBytes: info.size } },
    );
  }

  private downloadFrom(
    run: MissRun,
    file: string,
    plan: DownloadPlan,
    from: ImageSource,
    algos: ChecksumAlgo[],
    knownSize: number | undefined,
    retries = this.options.downloadRetries ?? 3,
  ): Promise<Downloaded> {
    const { ctx, signal, reservation } = run;
    return downloadTo(from, file, {
      algos,
      signal,
      retries,
      knownSize,
      validator: from === ctx.source ? ctx.info.validator : undefined,
      retryDelayMs: this.options.retryDelayMs ?? 1000,
      onProgress: (bytes, totalBytes) => {
        reservation?.progress(bytes);
        ctx.opts.onProgress?.({ stage: 'download', bytes, totalBytes });
      },
      bound: plan.bound,
      // A peer's master may be converted already: only the origin's announced format says anything.
      readBack: this.readBack(ctx, from === ctx.source),
      direct: this.options.directIo ?? true,
      logger: this.logger,
    });
  }

  /** Whether the image will be read back right after its download: known from its announced format, else
   * told by its first bytes (see DownloadOptions.readBack). */
  private readBack(ctx: FetchContext, byName: boolean): DownloadOptions['readBack'] {
    const forceRaw = ctx.opts.forceRaw ?? this.forceRaw;
    if (byName && convertedByName(ctx.opts.expectedFormat ?? ctx.info.diskFormat, forceRaw)) return true;
    const zstd = this.options.zstd ?? true;
    return (head) => readBackAfterDownload(head, { forceRaw, zstd });
  }

  /**
   * Runs the wait for another host's download without this miss's download slot: slots held by waiters could
   * otherwise starve the hosts they wait for.
   */
  private async idle<T>(run: MissRun, wait: () => Promise<T>): Promise<T> {
    run.release?.();
    run.release = undefined;
    try {
      return await wait();
    } finally {
      run.release = await this.limiter.acquire(run.signal);
    }
  }

  /** Every expected checksum matches the bytes downloaded; returns the one recorded for the master. */
  private verify(
    ctx: FetchContext,
    plan: DownloadPlan,
    dl: Downloaded,
    fromFleet?: FleetDownload,
  ): ExpectedChecksum {
    // A peer's bytes were verified as they came (fleet.ts): the checksum is the origin's, as its host recorded.
    if (fromFleet?.peer) return fromFleet.checksum!;
    for (const c of plan.checks) verifyDigest(c, dl.digests[c.algo]!, ctx.source.href);
    return { algo: plan.algo, value: dl.digests[plan.algo]! };
  }

  /** Format policy, decompression and conversion (prepare-image.ts); each step it takes is timed as a stage. */
  private async prepare(run: MissRun, file: string): Promise<PreparedImage> {
    const { ctx, signal } = run;
    const { opts, info, source } = ctx;
    signal.throwIfAborted();
    const clock = new ProgressClock(ctx);
    const prepared = await prepareImage(file, {
      validate: this.validate,
      forceRaw: opts.forceRaw ?? this.forceRaw,
      zstd: this.options.zstd ?? true,
      permitted: this.options.permittedFormats ?? DEFAULT_PERMITTED_FORMATS,
      // A peer's converted master is the raw image: the origin's format was checked where it was converted.
      expectedFormat: run.fromFleet?.peer?.converted ? undefined : (opts.expectedFormat ?? info.diskFormat),
      growthFactor: this.options.growthFactor ?? 2,
      memoryCap: this.options.qemuImgMemoryCap ?? 2 * 1024 ** 3,
      direct: this.options.directIo ?? true,
      makeRoom: (dir, bytes) => this.makeRoom(dir, bytes),
      // Written by a tool that reports no progress: its output is counted in the free space as it grows.
      room: async (what, size) => (await this.room(what, size, source.href, false)).budget,
      budget: (size) => this.budget(size),
      signal,
      href: source.href,
      onProgress: clock.onProgress,
    });
    clock.stop();
    return prepared;
  }

  /** Publishes the prepared file as the master (unless the source is never cached) and links it. */
  private async finish(
    run: MissRun,
    done: { file: string; dl: Downloaded; checksum: ExpectedChecksum; prepared: PreparedImage },
  ): Promise<FetchResult> {
    const { ctx } = run;
    const { source, info } = ctx;
    const { dl, checksum, prepared } = done;
    const size = prepared.file === done.file ? dl.size : (await fs.promises.stat(prepared.file)).size;
    const meta: MasterMeta = {
      href: source.safeHref,
      checksum,
      size,
      format: prepared.format,
      virtualSize: prepared.virtualSize,
      converted: prepared.converted,
      decompressed: prepared.decompressed,
      fetchedAt: new Date().toISOString(),
    };
    const { flight, fromFleet } = run;
    if (fromFleet?.peer) {
      // Converted or decompressed where it came from the origin: `checksum` is that download's.
      if (fromFleet.peer.converted) meta.converted = true;
      meta.decompressed = fromFleet.peer.decompressed;
    }
    // What peers verify this master against (hashed again only when it is not the bytes downloaded).
    if (flight)
      Object.assign(
        meta,
        await flight.describe(prepared.file, prepared.file === done.file ? dl.digests.sha256 : undefined),
      );
    if (info.noCache) {
      ctx.onProgress?.({ stage: 'publish' });
    } else {
      const workDir = run.workDir!;
      await runStage(ctx, 'publish', () => this.publish(ctx.name, prepared.file, meta, workDir), {
        signal: run.signal,
      });
    }
    await flight?.published({ cache: this.name, name: ctx.name, ...meta, sha256: meta.sha256! });
    const placedBy = (await this.place(ctx, prepared.file, undefined, true)) as PlaceMethod;
    await this.failures.clear(ctx.name).catch(() => undefined);
    ctx.durations.total = performance.now() - ctx.started;
    this.logger.info(
      {
        cache: this.name,
        href: source.safeHref,
        master: ctx.name,
        bytes: dl.size,
        format: meta.format,
        converted: meta.converted,
      },
      'fetched image',
    );
    return {
      cacheHit: false,
      masterPath: info.noCache ? undefined : ctx.masterPath,
      destPath: ctx.destPath,
      placedBy,
      format: meta.format,
      virtualSize: meta.virtualSize,
      size,
      converted: meta.converted,
      checksum,
      bytesDownloaded: dl.bytesDownloaded,
      ...(fromFleet?.peer && { peer: fromFleet.peer.host }),
      durations: ctx.durations,
    };
  }

  /**
   * A miss that failed: its error, typed; a failure every waiter would meet too is noted for them (X4); the
   * partial download is kept for the next attempt only when the caller asks and the failure is transient.
   */
  private async missFailed(run: MissRun, err: unknown): Promise<ImageCacheError> {
    const { ctx, signal } = run;
    const e = await this.wrap(err, ctx, signal);
    if (FailureNotes.shareable(e) && e.details.checksumUrl === undefined && !signal.aborted) {
      await this.failures.record(ctx.name, e).catch(() => undefined);
    }
    const keepPartial = ctx.opts.keepPartial;
    const wanted = typeof keepPartial === 'function' ? keepPartial() : Boolean(keepPartial);
    run.keep = wanted && e.retryable;
    return e;
  }

  /** Links the finished file to the master name: the work file keeps the link count above 1 meanwhile. */
  private publish(name: string, file: string, meta: MasterMeta, workDir: string): void {
    // The master first, then what is known of it: a crash in between leaves a master without metadata (a
    // later caller's checksum can't be compared, nothing worse), never metadata vouching for other bytes.
    // On this thread: links, a rename and a few hundred bytes of JSON, where each round trip through libuv's pool
    // cost 50-90 us of wake-ups (publish took 1.2-1.8 ms of a fresh process's 8 MiB miss, 0.2 ms like this).
    unlinkIfThere(this.folder.metaPath(name));
    const master = this.folder.masterPath(name);
    try {
      fs.linkSync(file, master);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const tmp = path.join(workDir, 'master');
      unlinkIfThere(tmp);
      fs.linkSync(file, tmp);
      fs.renameSync(tmp, master);
    }
    // What hits will check the master against: the file just linked, as it is now.
    const identity = identityOf(fs.lstatSync(master));
    const metaTmp = path.join(workDir, 'meta.json');
    fs.writeFileSync(metaTmp, JSON.stringify({ ...meta, identity }));
    fs.renameSync(metaTmp, this.folder.metaPath(name));
  }

  /** Room for a conversion: the registry's caches on that filesystem by priority, or this cache alone. */
  private async makeRoom(dir: string, bytes: number): Promise<void> {
    if (this.registry) {
      await this.registry.makeRoom(dir, bytes);
      return;
    }
    let free = await freeSpace(dir);
    if (bytes < free) return;
    await this.cleanUp(bytes - free);
    free = await freeSpace(dir);
    if (bytes >= free) throw new InsufficientDiskSpace(dir, bytes, free);
  }

  /**
   * A master the source changed since (Last-Modified) goes before the new download, as spec.md §2.4 says. One
   * whose recorded checksum merely differs from the caller's stays: the caller may be the one who is wrong,
   * and a verified download replaces it atomically anyway.
   */
  private async removeStaleMaster(ctx: FetchContext): Promise<void> {
    const master = statOrUndefined(ctx.masterPath);
    if (!master || isMasterFresh(ctx.info, master)) return;
    this.logger.info({ cache: this.name, master: ctx.name }, 'master is stale: fetching it again');
    await fs.promises.rm(ctx.masterPath, { force: true });
    await fs.promises.rm(this.folder.metaPath(ctx.name), { force: true });
  }

  private async expectedChecksum(
    ctx: FetchContext,
    signal: AbortSignal,
  ): Promise<ExpectedChecksum | undefined> {
    const c = ctx.checksum;
    if (c.kind === 'value') return c.expected;
    if (c.kind === 'url') {
      return fetchChecksumFile(c.url, ctx.info.fileName, {
        http: this.sourceOptions.http,
        signal,
        algo: c.algo,
        allowMd5: !this.options.disallowMd5,
        href: ctx.source.href,
      });
    }
    return undefined;
  }

  /** The checksum the source vouches for, unless it is md5 and md5 is refused. */
  private vouchedChecksum(ctx: FetchContext): ExpectedChecksum | undefined {
    const v = ctx.info.checksum;
    if (!v || (v.algo === 'md5' && this.options.disallowMd5)) return undefined;
    return { algo: v.algo, value: v.value.toLowerCase() };
  }

  /** A caller's checksum that disagrees with the recorded one makes the master stale. */
  private sameChecksum(c: ParsedChecksum, meta: MasterMeta): boolean {
    if (c.kind !== 'value' || c.expected.algo !== meta.checksum.algo) return true;
    return c.expected.value === meta.checksum.value;
  }

  /** The master's metadata as its file says now (an adopted Ironic master has none); remembered for hits. */
  private readMeta(name: string): MasterMeta | undefined {
    const meta = readJsonOrUndefined<MasterMeta>(this.folder.metaPath(name));
    this.metas.remember(name, meta);
    return meta;
  }

  private async wrap(err: unknown, ctx: FetchContext, signal?: AbortSignal): Promise<ImageCacheError> {
    if (err instanceof ImageCacheError) return withHref(err, ctx.source.href);
    if (signal?.aborted || ctx.opts.signal?.aborted) {
      return new OperationAborted(`fetch of ${ctx.source.safeHref} cancelled`, { href: ctx.source.href });
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') {
      const free = await freeSpace(this.masterDir).catch(() => 0);
      return new InsufficientDiskSpace(this.masterDir, ctx.info.size ?? 0, free, {
        href: ctx.source.href,
        cause: err,
      });
    }
    return new ImageCacheError(`fetch of ${ctx.source.safeHref} to ${ctx.destPath} failed: ${e.message}`, {
      href: ctx.source.href,
      cause: err,
    });
  }
}

export interface MasterEntry {
  name: string;
  path: string;
  size: number;
  /** Bytes it takes on disk (st_blocks × 512): what counts towards the cache's size. */
  allocated: number;
  /**
   * Not a master (not named as one, no metadata): never evicted, but its bytes count towards the folder's
   * size (spec.md §8).
   */
  foreign?: boolean;
  links: number;
  lastUsed: Date;
  href?: string;
  format?: string;
  checksum?: { algo: string; value: string };
}
