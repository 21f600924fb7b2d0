import type { CacheConfig, HostConfig, HttpAuth } from '@imagecache/config';
import {
  CacheRegistry,
  HostDownloadSlots,
  ImageCache,
  type CallOptions,
  type HostHandle,
  type ImageRequest,
  type Logger,
  type SpaceReport,
} from '@imagecache/core';
import { UsageError } from '@imagecache/errors';
import {
  DEFAULT_OCI_DISK_TYPES,
  OCI_DISK_TYPES_FOR_CONVERSION,
  type SourceOptions,
} from '@imagecache/sources';

/** The caches of one host, built from its configuration: the engine's `HostHandle` in this process. */
export class Host implements HostHandle {
  constructor(
    readonly config: HostConfig,
    readonly registry: CacheRegistry,
  ) {}

  /** The cache named, or the configuration's first; a UsageError names the known ones. */
  cache(name?: string): ImageCache {
    const found = this.registry.get(name ?? this.config.caches[0]!.name);
    if (!found) {
      const known = this.config.caches.map((c) => c.name).join(', ');
      throw new UsageError(`no cache named ${name}; this configuration has: ${known}`);
    }
    return found;
  }

  /** Every cache of the configuration, highest priority first. */
  get caches(): readonly ImageCache[] {
    return this.registry.caches;
  }

  cleanUpCaches(
    directory: string,
    images: readonly ImageRequest[],
    opts: CallOptions = {},
  ): Promise<SpaceReport> {
    return this.registry.cleanUpCaches(directory, images, opts.signal);
  }
}

/** Builds a host's caches from its configuration: one download limit for the host, each cache's sources. */
export function openHost(config: HostConfig, logger: Logger): Host {
  // Host-wide: every process of the host (CLI calls, worker replicas) takes its slots in the same folder.
  const limiter = new HostDownloadSlots(config.downloadConcurrency, config.downloadSlotsDir, logger);
  const registry = new CacheRegistry(sourceOptionsFor(config), logger);
  for (const c of config.caches) {
    registry.register(
      new ImageCache({
        name: c.name,
        masterDir: c.masterDir,
        cacheSize: c.cacheSize,
        cacheTtl: c.cacheTtl,
        priority: c.priority,
        forceRaw: c.forceRaw,
        validate: c.validate,
        permittedFormats: c.permittedFormats,
        zstd: config.zstd,
        directIo: config.directIo,
        growthFactor: config.growthFactor,
        qemuImgMemoryCap: config.qemuImg.memoryCap,
        sources: sourceOptionsFor(config, c),
        disallowMd5: !config.allowMd5,
        createDestDirs: config.createDestDirs,
        destinations: { allowedRoots: config.destinations.allowedRoots },
        limiter,
        logger,
      }),
    );
  }
  return new Host(config, registry);
}

/** How a cache's sources connect, from the host's configuration (the cache's own settings first). */
export function sourceOptionsFor(config: HostConfig, cache?: CacheConfig): SourceOptions {
  const h = config.http;
  const { oci, imageService } = config;
  // The cache's own credentials win over the host's; either goes to its own origins only.
  const { origins: authOrigins, ...auth } = cache?.auth ?? h.auth ?? { origins: undefined };
  return {
    fileRoots: config.file.allowedRoots,
    fileAllowHardLinks: config.file.allowHardLinks,
    http: {
      // 0 means "no limit" in the configuration and in SourceOptions alike.
      inactivityTimeoutMs: Math.round(h.inactivityTimeout * 1000),
      connectTimeoutMs: Math.round(h.connectTimeout * 1000),
      minRateBytesPerSec: h.minRate,
      minRateWindowMs: Math.round(h.minRateWindow * 1000),
      blockedNetworks: h.blockedNetworks,
      allowHttpsToHttpRedirect: h.allowHttpsToHttpRedirect,
      verifyTls: h.verifyTls,
      caFile: h.caFile,
      minTlsVersion: h.minTlsVersion,
      ...(authOrigins !== undefined && { auth: auth as HttpAuth, authOrigins }),
    },
    imageService,
    oci: {
      platform: oci.platform,
      // A cache that converts to raw prefers the smaller qcow2 of an index; one that keeps the format, raw.
      diskTypes:
        oci.diskTypes ?? ((cache?.forceRaw ?? true) ? OCI_DISK_TYPES_FOR_CONVERSION : DEFAULT_OCI_DISK_TYPES),
      registries: oci.registries,
      allowedTokenRealms: oci.allowedTokenRealms,
    },
  };
}
