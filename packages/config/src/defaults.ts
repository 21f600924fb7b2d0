/** Image formats a cache may be told to permit (the names of the safe format inspector, as in Ironic). */
export const IMAGE_FORMATS = Object.freeze([
  'raw',
  'gpt',
  'qcow2',
  'iso',
  'vmdk',
  'vhd',
  'vhdx',
  'vdi',
  'qed',
  'luks',
] as const);
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Log levels (pino's). */
export const LOG_LEVELS = Object.freeze([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const);
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Lowest TLS version accepted on https:// downloads. */
export const TLS_VERSIONS = Object.freeze(['TLSv1.2', 'TLSv1.3'] as const);
export type TlsVersion = (typeof TLS_VERSIONS)[number];

/**
 * Named clean-up priorities (spec.md §8): `cleanUpCaches` cleans the caches of higher priority first.
 * A cache named like a preset gets that priority unless it sets one; `priority:` also accepts the names.
 */
export const PRIORITY_PRESETS = Object.freeze({ iso: 75, instance: 50, tftp: 25 } as const);
export type PriorityPreset = keyof typeof PRIORITY_PRESETS;

const GiB = 2 ** 30;

/**
 * Every default of the configuration, in one place (spec.md §10). Sizes are bytes, durations seconds.
 * Deeply frozen.
 */
export const DEFAULTS = Object.freeze({
  /** Folder of the single cache of the CLI's `--master-dir` mode when none is given. */
  masterDir: '/var/lib/imagecache/master_images',
  /** Bytes of masters a cache keeps before stage 2 of the clean-up removes the oldest unused ones. */
  cacheSize: 20 * GiB,
  /** Seconds an unused master is kept (7 days). */
  cacheTtl: 7 * 86400,
  /** Priority of a cache whose name matches no preset. */
  priority: PRIORITY_PRESETS.instance,
  priorities: PRIORITY_PRESETS,
  forceRaw: true,
  validate: true,
  downloadConcurrency: 20,
  /** Folder (under os.tmpdir() unless `downloadSlotsDir` is set) of the host-wide download slots. */
  downloadSlotsFolder: 'imagecache-download-slots',
  growthFactor: 2.0,
  permittedFormats: Object.freeze(['raw', 'gpt', 'qcow2', 'iso'] as const) as readonly ImageFormat[],
  zstd: true,
  /** Big images and qemu-img's output go straight to the disk (O_DIRECT) where the filesystem takes it. */
  directIo: true,
  allowMd5: true,
  /** Seconds between periodic sweeps of every cache; 0 turns the sweep off. */
  sweepIntervalSeconds: 3600,
  createDestDirs: false,
  /** Folders file:// references may point into (spec.md §7). */
  fileRoots: Object.freeze(['/var/lib/imagecache/files']) as readonly string[],
  /** file:// files with more than one hard link are refused (another name may lie outside the roots). */
  fileAllowHardLinks: false,
  /** The worker and the API need destinations.allowedRoots unless this is set true. */
  destinationsUnrestricted: false,
  /** Seconds without a byte received before an http(s) download fails. */
  httpInactivityTimeout: 60,
  /**
   * Bytes per second an http(s) download must keep up, measured over `httpMinRateWindow` (a trickling source
   * can't hold a download slot forever; 1 KiB/s over a minute never cuts a healthy slow link). 0 turns it off.
   */
  httpMinRate: 1024,
  /** Seconds the minimum rate is measured over. */
  httpMinRateWindow: 60,
  /** Follow redirects from https to plain http. */
  allowHttpsToHttpRedirect: false,
  /** Seconds to establish an http(s) connection. */
  httpConnectTimeout: 30,
  verifyTls: true,
  minTlsVersion: 'TLSv1.2' as TlsVersion,
  /** Memory (address-space) cap of a qemu-img child process, bytes. */
  qemuImgMemoryCap: 2 * GiB,
  /** Keystone catalog interface of the image service when no endpoint is configured. */
  imageServiceInterface: 'public' as 'public' | 'internal' | 'admin',
  /** disktype preference of OCI indexes for caches that keep the format (Ironic's order). */
  ociDiskTypes: Object.freeze(['raw', 'qcow2', 'qemu', 'applehv']) as readonly string[],
  /** disktype preference of OCI indexes for caches that convert to raw (smaller downloads first). */
  ociDiskTypesForConversion: Object.freeze(['qcow2', 'qemu', 'raw', 'applehv']) as readonly string[],
  /** Key prefix of the distributed mode: a Redis Cluster hash tag. */
  redisPrefix: '{imagecache}',
  logLevel: 'info' as LogLevel,
  /** Fleet mode (hosts take masters from each other) is off unless turned on. */
  peersEnabled: false,
  /** Address the peer service listens on. */
  peersBind: '127.0.0.1',
  /** Uploads the peer service runs at once. */
  peersUploadConcurrency: 4,
  /** Seconds a peer token is valid. */
  peersTokenTtl: 60,
});
