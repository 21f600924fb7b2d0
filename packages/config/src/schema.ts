import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import {
  DEFAULTS,
  IMAGE_FORMATS,
  LOG_LEVELS,
  PRIORITY_PRESETS,
  TLS_VERSIONS,
  type ImageFormat,
  type LogLevel,
  type TlsVersion,
} from './defaults';
import { trySize, tryDuration } from './units';
import { CACHE_NAME, CACHE_NAME_RULE, HOST_NAME, HOST_NAME_RULE } from './names';

// ---------------------------------------------------------------------------------------------------------------
// Field types

/** A size: bytes (number or digits) or a number with a unit (`500MiB`, `20GiB`, `100M`). Output: bytes. */
function sizeField() {
  return z
    .custom<string | number>(() => true)
    .transform((v, ctx) => {
      const r = trySize(v);
      if (r.ok) return r.value;
      ctx.addIssue({ code: 'custom', message: r.message });
      return z.NEVER;
    });
}

/** A duration: seconds (number or digits) or units (`30s`, `15m`, `1h`, `7d`). Output: seconds. */
function durationField() {
  return z
    .custom<string | number>(() => true)
    .transform((v, ctx) => {
      const r = tryDuration(v);
      if (r.ok) return r.value;
      ctx.addIssue({ code: 'custom', message: r.message });
      return z.NEVER;
    });
}

/** Removes trailing slashes and `.`/`..` segments, so equal folders compare equal. */
export function normalizeDir(dir: string): string {
  const n = path.normalize(dir);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** The folder with its symlinks resolved when it exists; as written otherwise (it may be made later). */
function canonicalIfExists(dir: string): string {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return dir;
  }
}

/** An absolute path, normalized. */
function absolutePath() {
  return z
    .string()
    .min(1)
    .superRefine((p, ctx) => {
      if (!path.isAbsolute(p))
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(p)} is not an absolute path` });
      else if (p.includes('\0'))
        ctx.addIssue({ code: 'custom', message: 'must not contain a NUL character' });
    })
    .transform(normalizeDir);
}

const formatList = z
  .array(z.enum(IMAGE_FORMATS))
  .min(1)
  .transform((l) => [...new Set(l)]);

const PRIORITY_HINT = `must be an integer or one of ${Object.entries(PRIORITY_PRESETS)
  .map(([k, v]) => `${k} (${v})`)
  .join(', ')}`;

const priorityField = z
  .custom<number | keyof typeof PRIORITY_PRESETS>(() => true)
  .transform((v, ctx) => {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'string' && Object.hasOwn(PRIORITY_PRESETS, v)) return PRIORITY_PRESETS[v];
    ctx.addIssue({ code: 'custom', message: PRIORITY_HINT });
    return z.NEVER;
  });

// ---------------------------------------------------------------------------------------------------------------
// Objects

const BasicAuthSchema = z.strictObject({
  type: z.literal('basic'),
  username: z.string().min(1),
  password: z.string(),
});
const BearerAuthSchema = z.strictObject({
  type: z.literal('bearer'),
  token: z.string().min(1),
});
export const AuthSchema = z.discriminatedUnion('type', [BasicAuthSchema, BearerAuthSchema]);

/** An origin (`https://images.example:443`): scheme, host and port (default ports may be left out), no more. */
export function originField() {
  return z
    .string()
    .superRefine((o, ctx) => {
      let url: URL | undefined;
      try {
        url = new URL(o);
      } catch {
        url = undefined;
      }
      const bare =
        url !== undefined &&
        ['http:', 'https:'].includes(url.protocol) &&
        !url.username &&
        !url.password &&
        url.pathname === '/' &&
        !o.endsWith('/') &&
        !url.search &&
        !url.hash;
      if (!bare)
        ctx.addIssue({ code: 'custom', message: 'must be an origin: http(s)://HOST[:PORT], no path' });
    })
    .transform((o) => new URL(o).origin);
}

/**
 * The origins configured credentials may be sent to: required, so that a cache's credentials never reach a
 * server that was not named for them (an href of another host, a redirect).
 */
const authOrigins = z
  .array(originField(), {
    error: (iss) =>
      iss.input === undefined
        ? 'is required: list the origins these credentials may be sent to (e.g. [https://images.example:443])'
        : undefined,
  })
  .min(1);

/** Credentials configured for http(s) downloads (`http.auth`, `caches[].auth`), bound to origins. */
export const OriginAuthSchema = z.discriminatedUnion('type', [
  BasicAuthSchema.extend({ origins: authOrigins }),
  BearerAuthSchema.extend({ origins: authOrigins }),
]);

export const CacheSchema = z.strictObject({
  name: z.string().regex(CACHE_NAME, { error: CACHE_NAME_RULE }),
  masterDir: absolutePath().refine((p) => p !== '/', { error: 'must not be the root folder' }),
  cacheSize: sizeField().default(DEFAULTS.cacheSize),
  cacheTtl: durationField().default(DEFAULTS.cacheTtl),
  priority: priorityField.optional(),
  forceRaw: z.boolean().default(DEFAULTS.forceRaw),
  validate: z.boolean().default(DEFAULTS.validate),
  permittedFormats: formatList.optional(),
  /** Credentials for this cache's http(s) downloads; a request's own auth wins, this wins over http.auth. */
  auth: OriginAuthSchema.optional(),
});

/** A network in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a bare address. */
const networkField = z.string().superRefine((text, ctx) => {
  const m = /^\[?([^/\s\]]+)\]?(?:\/(\d{1,3}))?$/.exec(text.trim());
  const family = m ? net.isIP(m[1]!) : 0;
  const prefix = m?.[2] === undefined ? 0 : Number(m[2]);
  if (family === 0 || prefix > (family === 4 ? 32 : 128))
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(text)} is not a network (CIDR such as 10.0.0.0/8)`,
    });
});

export const HttpSchema = z.strictObject({
  inactivityTimeout: durationField().default(DEFAULTS.httpInactivityTimeout),
  /** Bytes per second (units allowed: `1KiB`); 0 turns the minimum rate off. */
  minRate: sizeField().default(DEFAULTS.httpMinRate),
  minRateWindow: durationField().default(DEFAULTS.httpMinRateWindow),
  blockedNetworks: z.array(networkField).default(() => []),
  allowHttpsToHttpRedirect: z.boolean().default(DEFAULTS.allowHttpsToHttpRedirect),
  connectTimeout: durationField().default(DEFAULTS.httpConnectTimeout),
  verifyTls: z.boolean().default(DEFAULTS.verifyTls),
  caFile: absolutePath().optional(),
  minTlsVersion: z.enum(TLS_VERSIONS).default(DEFAULTS.minTlsVersion),
  auth: OriginAuthSchema.optional(),
});

/** An http(s) URL (never quoted in errors: it may carry credentials). */
function httpUrl() {
  return z.string().superRefine((u, ctx) => {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(u).protocol);
    } catch {
      ok = false;
    }
    if (!ok) ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
  });
}

const NoneAuthSchema = z.strictObject({ type: z.literal('none') });
const TokenAuthSchema = z.strictObject({ type: z.literal('token'), token: z.string().min(1) });
const KeystoneAuthSchema = z
  .strictObject({
    type: z.literal('keystone'),
    authUrl: httpUrl(),
    username: z.string().min(1),
    password: z.string(),
    userDomainName: z.string().min(1).optional(),
    userDomainId: z.string().min(1).optional(),
    projectName: z.string().min(1).optional(),
    projectId: z.string().min(1).optional(),
    projectDomainName: z.string().min(1).optional(),
    projectDomainId: z.string().min(1).optional(),
  })
  .superRefine((a, ctx) => {
    const both = (x: string, y: string) =>
      ctx.addIssue({ code: 'custom', path: [y], message: `give ${x} or ${y}, not both` });
    if (a.userDomainName !== undefined && a.userDomainId !== undefined)
      both('userDomainName', 'userDomainId');
    if (a.projectName !== undefined && a.projectId !== undefined) both('projectName', 'projectId');
    if (a.projectDomainName !== undefined && a.projectDomainId !== undefined)
      both('projectDomainName', 'projectDomainId');
  });
export const ImageServiceAuthSchema = z.discriminatedUnion('type', [
  NoneAuthSchema,
  TokenAuthSchema,
  KeystoneAuthSchema,
]);

export const ImageServiceSchema = z.strictObject({
  endpoint: httpUrl().optional(),
  auth: ImageServiceAuthSchema.default({ type: 'none' }),
  interface: z.enum(['public', 'internal', 'admin']).default(DEFAULTS.imageServiceInterface),
  region: z.string().min(1).optional(),
});

/** `HOST[:PORT]` as an oci:// href names the registry. */
const REGISTRY_HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(:\d{1,5})?$/;

export const OciRegistrySchema = z.strictObject({
  host: z.string().regex(REGISTRY_HOST, { error: 'must be HOST or HOST:PORT, as in the oci:// href' }),
  auth: AuthSchema.optional(),
  plainHttp: z.boolean().optional(),
  caFile: absolutePath().optional(),
  verifyTls: z.boolean().optional(),
});

export const OciPlatformSchema = z.strictObject({
  architecture: z.string().min(1).optional(),
  os: z.string().min(1).optional(),
});

export const OciSchema = z.strictObject({
  platform: OciPlatformSchema.prefault({}),
  /** Token services trusted on another scheme or host than their registry's. */
  allowedTokenRealms: z.array(originField()).optional(),
  diskTypes: z.array(z.string().min(1)).min(1).optional(),
  registries: z
    .array(OciRegistrySchema)
    .default(() => [])
    .superRefine((list, ctx) => {
      const seen = new Map<string, number>();
      list.forEach((r, i) => {
        const k = r.host.toLowerCase();
        const first = seen.get(k);
        if (first !== undefined)
          ctx.addIssue({ code: 'custom', path: [i, 'host'], message: `is used by registries[${first}] too` });
        else seen.set(k, i);
      });
    }),
});

export const FileSchema = z.strictObject({
  allowedRoots: z.array(absolutePath()).default(() => [...DEFAULTS.fileRoots]),
  allowHardLinks: z.boolean().default(DEFAULTS.fileAllowHardLinks),
});

/**
 * Where fetched images may be written (spec.md §5). The roots are made canonical here (symlinks resolved, for
 * the part that exists) so what is shown is what is enforced; the engine resolves them again at use.
 */
export const DestinationsSchema = z.strictObject({
  allowedRoots: z
    .array(absolutePath().transform(canonicalIfExists))
    .min(1, { error: 'must list at least one folder (or leave the key out)' })
    .optional(),
  unrestricted: z.boolean().default(DEFAULTS.destinationsUnrestricted),
});

export const QemuImgSchema = z.strictObject({
  memoryCap: sizeField().default(DEFAULTS.qemuImgMemoryCap),
});

const RedisNodeSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(6379),
});

const REDIS_SHAPES = 'give exactly one of url, sentinels (with name) or cluster';

export const RedisSchema = z
  .strictObject({
    url: z.string().optional(),
    sentinels: z.array(RedisNodeSchema).min(1).optional(),
    name: z.string().min(1).optional(),
    cluster: z.array(RedisNodeSchema).min(1).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    db: z.number().int().min(0).optional(),
    tls: z.boolean().optional(),
    prefix: z.string().min(1).default(DEFAULTS.redisPrefix),
  })
  .superRefine((r, ctx) => {
    const shapes = [r.url, r.sentinels, r.cluster].filter((x) => x !== undefined).length;
    if (shapes !== 1) ctx.addIssue({ code: 'custom', message: REDIS_SHAPES });
    if (r.url !== undefined) {
      // Never quote the URL: it may carry a password.
      let ok = false;
      try {
        ok = ['redis:', 'rediss:'].includes(new URL(r.url).protocol);
      } catch {
        ok = false;
      }
      if (!ok)
        ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be a redis:// or rediss:// URL' });
    }
    if (r.sentinels !== undefined && r.name === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: 'is required with sentinels (the master group name)',
      });
    if (r.sentinels === undefined && r.name !== undefined)
      ctx.addIssue({ code: 'custom', path: ['name'], message: 'is only meaningful with sentinels' });
    if (r.cluster !== undefined && r.db !== undefined)
      ctx.addIssue({ code: 'custom', path: ['db'], message: 'Redis Cluster has no databases but 0' });
    if (r.cluster !== undefined && !/\{[^}]+\}/.test(r.prefix))
      ctx.addIssue({
        code: 'custom',
        path: ['prefix'],
        message: 'must contain a hash tag such as {imagecache} with Redis Cluster',
      });
  })
  .transform((r): RedisConfig => {
    const common = {
      prefix: r.prefix,
      ...(r.username !== undefined && { username: r.username }),
      ...(r.password !== undefined && { password: r.password }),
      ...(r.tls !== undefined && { tls: r.tls }),
    };
    const db = r.db !== undefined ? { db: r.db } : {};
    if (r.sentinels)
      return { mode: 'sentinel', sentinels: r.sentinels, name: r.name ?? '', ...db, ...common };
    if (r.cluster) return { mode: 'cluster', cluster: r.cluster, ...common };
    return { mode: 'standalone', url: r.url ?? '', ...db, ...common };
  });

/** A fleet group (rack, zone): it ends up in Redis keys. */
const PEER_GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const PeersTlsSchema = z.strictObject({
  certFile: absolutePath(),
  keyFile: absolutePath(),
  /** The CA the other hosts' peer certificates are checked against (else the system's roots). */
  caFile: absolutePath().optional(),
});

/** Fleet mode: the peer service and how hosts take masters from each other (issue 12). */
export const PeersSchema = z.strictObject({
  enabled: z.boolean().default(DEFAULTS.peersEnabled),
  /** Shared by the hosts of a fleet: it signs and checks peer tokens. Never quoted. */
  secret: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
  group: z
    .string()
    .regex(PEER_GROUP, {
      error: 'must be 1-64 letters, digits, ".", "-" or "_", starting with a letter or digit',
    })
    .optional(),
  port: z.number().int().min(0).max(65535).optional(),
  bind: z.string().min(1).default(DEFAULTS.peersBind),
  advertiseUrl: httpUrl().optional(),
  uploadConcurrency: z.number().int().min(1).default(DEFAULTS.peersUploadConcurrency),
  /** Bytes per second all uploads together may send; none: no cap. */
  bandwidth: sizeField()
    .refine((n) => n > 0, { error: 'must be more than 0 (leave it out for no cap)' })
    .optional(),
  tls: PeersTlsSchema.optional(),
  tokenTtl: durationField()
    .refine((n) => n > 0, { error: 'must be more than 0' })
    .default(DEFAULTS.peersTokenTtl),
});

const PeersCheckedSchema = PeersSchema.superRefine((p, ctx) => {
  if (p.enabled && p.secret === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['secret'],
      message: 'is required when peers.enabled is true (or set IMAGECACHE_PEERS_SECRET)',
    });
});

const RootSchema = z.strictObject({
  host: z
    .string()
    .regex(HOST_NAME, { error: HOST_NAME_RULE })
    .default(() => os.hostname()),
  caches: z
    .array(CacheSchema)
    .min(1)
    .superRefine((caches, ctx) => {
      for (const issue of cacheListIssues(caches)) ctx.addIssue({ code: 'custom', ...issue });
    }),
  downloadConcurrency: z.number().int().min(1).default(DEFAULTS.downloadConcurrency),
  /** Where the host's download slots live: every process of the host must name the same folder. */
  downloadSlotsDir: absolutePath().default(() => path.join(os.tmpdir(), DEFAULTS.downloadSlotsFolder)),
  growthFactor: z.number().min(1).default(DEFAULTS.growthFactor),
  permittedFormats: formatList.default(() => [...DEFAULTS.permittedFormats]),
  zstd: z.boolean().default(DEFAULTS.zstd),
  allowMd5: z.boolean().default(DEFAULTS.allowMd5),
  sweepInterval: durationField().default(DEFAULTS.sweepIntervalSeconds),
  createDestDirs: z.boolean().default(DEFAULTS.createDestDirs),
  file: FileSchema.prefault({}),
  destinations: DestinationsSchema.prefault({}),
  http: HttpSchema.prefault({}),
  qemuImg: QemuImgSchema.prefault({}),
  imageService: ImageServiceSchema.prefault({}),
  oci: OciSchema.prefault({}),
  redis: RedisSchema.optional(),
  peers: PeersCheckedSchema.prefault({}),
  logLevel: z.enum(LOG_LEVELS).default(DEFAULTS.logLevel),
});

/** The keys each object of the configuration accepts, by kind (for "did you mean" hints). */
export const KNOWN_KEYS = Object.freeze({
  root: Object.keys(RootSchema.shape),
  cache: Object.keys(CacheSchema.shape),
  http: Object.keys(HttpSchema.shape),
  auth: [
    ...new Set([...Object.keys(BasicAuthSchema.shape), ...Object.keys(BearerAuthSchema.shape), 'origins']),
  ],
  registryAuth: [...new Set([...Object.keys(BasicAuthSchema.shape), ...Object.keys(BearerAuthSchema.shape)])],
  file: Object.keys(FileSchema.shape),
  destinations: Object.keys(DestinationsSchema.shape),
  qemuImg: Object.keys(QemuImgSchema.shape),
  imageService: Object.keys(ImageServiceSchema.shape),
  imageServiceAuth: [
    ...new Set([...Object.keys(TokenAuthSchema.shape), ...Object.keys(KeystoneAuthSchema.shape)]),
  ],
  oci: Object.keys(OciSchema.shape),
  ociPlatform: Object.keys(OciPlatformSchema.shape),
  ociRegistry: Object.keys(OciRegistrySchema.shape),
  redis: ['url', 'sentinels', 'name', 'cluster', 'username', 'password', 'db', 'tls', 'prefix'],
  redisNode: Object.keys(RedisNodeSchema.shape),
  peers: Object.keys(PeersSchema.shape),
  peersTls: Object.keys(PeersTlsSchema.shape),
});

/** Environment-variable form of a cache name: upper-case, `-` → `_`. */
export function envName(cacheName: string): string {
  return cacheName.toUpperCase().replace(/-/g, '_');
}

/**
 * Duplicate names, env-name clashes and duplicate master folders in a list of caches. Tolerates raw input
 * (entries that are not objects, or lack fields), so it can report alongside other issues.
 */
export function cacheListIssues(
  caches: readonly unknown[],
): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const names = new Map<string, number>();
  const envNames = new Map<string, number>();
  const dirs = new Map<string, number>();
  caches.forEach((c, i) => {
    if (typeof c !== 'object' || c === null) return;
    const { name, masterDir } = c as { name?: unknown; masterDir?: unknown };
    if (typeof name === 'string' && CACHE_NAME.test(name)) {
      const seen = names.get(name);
      const seenEnv = envNames.get(envName(name));
      if (seen !== undefined)
        out.push({ path: [i, 'name'], message: `${JSON.stringify(name)} is used by caches[${seen}] too` });
      else if (seenEnv !== undefined)
        out.push({
          path: [i, 'name'],
          message: `${JSON.stringify(name)} clashes with caches[${seenEnv}] in environment variable names (IMAGECACHE_CACHE_${envName(name)}_*)`,
        });
      if (seen === undefined) names.set(name, i);
      if (seenEnv === undefined) envNames.set(envName(name), i);
    }
    if (typeof masterDir === 'string' && path.isAbsolute(masterDir)) {
      const dir = normalizeDir(masterDir);
      const seen = dirs.get(dir);
      if (seen !== undefined)
        out.push({
          path: [i, 'masterDir'],
          message: `${JSON.stringify(dir)} is used by caches[${seen}] too`,
        });
      else dirs.set(dir, i);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Output types

/** One cache (master folder) of a host, all defaults filled. */
export interface CacheConfig {
  name: string;
  /** Absolute, normalized. */
  masterDir: string;
  /** Bytes. */
  cacheSize: number;
  /** Seconds. */
  cacheTtl: number;
  /** Higher is cleaned first by cleanUpCaches. */
  priority: number;
  forceRaw: boolean;
  validate: boolean;
  /** The cache's own list, else the host's. */
  permittedFormats: ImageFormat[];
  /** Credentials for this cache's http(s) downloads (over http.auth); absent when not set. */
  auth?: OriginAuth;
}

export type HttpAuth =
  { type: 'basic'; username: string; password: string } | { type: 'bearer'; token: string };

/** Configured credentials and the origins (`https://host[:port]`, normalized) they may be sent to. */
export type OriginAuth = HttpAuth & { origins: string[] };

export interface HttpConfig {
  /** Seconds; 0 = none. */
  inactivityTimeout: number;
  /** Bytes per second a download must keep up over `minRateWindow`; 0 = none. */
  minRate: number;
  /** Seconds. */
  minRateWindow: number;
  /** CIDRs redirects may not lead to (link-local ranges always refused). */
  blockedNetworks: string[];
  allowHttpsToHttpRedirect: boolean;
  /** Seconds; 0 = none. */
  connectTimeout: number;
  verifyTls: boolean;
  caFile?: string;
  minTlsVersion: TlsVersion;
  auth?: OriginAuth;
}

export interface RedisNode {
  host: string;
  port: number;
}

interface RedisCommon {
  prefix: string;
  username?: string;
  password?: string;
  tls?: boolean;
}

export type RedisConfig =
  | (RedisCommon & { mode: 'standalone'; url: string; db?: number })
  | (RedisCommon & { mode: 'sentinel'; sentinels: RedisNode[]; name: string; db?: number })
  | (RedisCommon & { mode: 'cluster'; cluster: RedisNode[] });

/** How the image service (OpenStack Glance v2) is reached. */
export type ImageServiceAuthConfig =
  | { type: 'none' }
  | { type: 'token'; token: string }
  | {
      type: 'keystone';
      authUrl: string;
      username: string;
      password: string;
      userDomainName?: string;
      userDomainId?: string;
      projectName?: string;
      projectId?: string;
      projectDomainName?: string;
      projectDomainId?: string;
    };

export interface ImageServiceConfig {
  /** Absent: found in the Keystone catalog (keystone auth only). */
  endpoint?: string;
  auth: ImageServiceAuthConfig;
  interface: 'public' | 'internal' | 'admin';
  region?: string;
}

export interface OciRegistryConfig {
  host: string;
  auth?: HttpAuth;
  /** Absent: plain http for loopback hosts only. */
  plainHttp?: boolean;
  caFile?: string;
  verifyTls?: boolean;
}

export interface OciConfig {
  /** Absent fields: this host's architecture, `linux`. */
  platform: { architecture?: string; os?: string };
  /** Absent: qcow2 first for a cache that converts to raw, raw first otherwise. */
  diskTypes?: string[];
  registries: OciRegistryConfig[];
  /** Origins of token services trusted on another scheme or host than their registry's; absent: none. */
  allowedTokenRealms?: string[];
}

/** Where destinations may be written (spec.md §5). */
export interface DestinationsConfig {
  /** Canonical folders destinations must lie under; absent: anywhere but a cache's master folder. */
  allowedRoots?: string[];
  /** The worker and the API accept a configuration without allowedRoots only with this set. */
  unrestricted: boolean;
}

/** Fleet mode (issue 12): the peer service of this host and how it takes masters from others. */
export interface PeersConfig {
  enabled: boolean;
  /** Signs and checks peer tokens; required when enabled. Never log it. */
  secret?: string;
  /** Peers of this group (a rack, a zone) are asked first, then the others; absent: any host, in random order. */
  group?: string;
  /** Port of the peer service (the worker's --peer-port wins); absent: not served unless the flag is given. */
  port?: number;
  bind: string;
  /** What other hosts use to reach this one; absent: `peerAdvertiseUrl` (from bind and port). */
  advertiseUrl?: string;
  uploadConcurrency: number;
  /** Bytes per second; absent: no cap. */
  bandwidth?: number;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** Seconds. */
  tokenTtl: number;
}

/** A host's configuration, parsed: sizes in bytes, durations in seconds, every default filled. */
export interface HostConfig {
  host: string;
  caches: CacheConfig[];
  downloadConcurrency: number;
  /** Absolute: the folder of the host-wide download slots (default under the system's temporary folder). */
  downloadSlotsDir: string;
  growthFactor: number;
  permittedFormats: ImageFormat[];
  zstd: boolean;
  allowMd5: boolean;
  /** Seconds; 0 = no periodic sweep. */
  sweepInterval: number;
  /** Create a destination's missing folders (under `destinations.allowedRoots` only, when set). */
  createDestDirs: boolean;
  /** file:// sources: the folders they may come from; files with more than one link are refused unless allowed. */
  file: { allowedRoots: string[]; allowHardLinks: boolean };
  destinations: DestinationsConfig;
  http: HttpConfig;
  /** memoryCap in bytes; 0 = no cap. */
  qemuImg: { memoryCap: number };
  imageService: ImageServiceConfig;
  oci: OciConfig;
  redis?: RedisConfig;
  peers: PeersConfig;
  logLevel: LogLevel;
}

/** The zod schema of one host's configuration (input: the file's form; output: `HostConfig`). */
export const HostConfigSchema = RootSchema.transform((c): HostConfig => {
  const { redis, http, imageService, oci, destinations, peers, ...rest } = c;
  const { caFile, auth, ...httpRest } = http;
  return {
    ...rest,
    imageService: dropUndefined(imageService) as ImageServiceConfig,
    oci: {
      platform: dropUndefined(oci.platform),
      ...(oci.diskTypes !== undefined && { diskTypes: oci.diskTypes }),
      registries: oci.registries.map((r) => dropUndefined(r) as OciRegistryConfig),
      ...(oci.allowedTokenRealms !== undefined && { allowedTokenRealms: oci.allowedTokenRealms }),
    },
    caches: c.caches.map((cache) => ({
      ...cache,
      priority:
        cache.priority ??
        (Object.hasOwn(PRIORITY_PRESETS, cache.name)
          ? PRIORITY_PRESETS[cache.name as keyof typeof PRIORITY_PRESETS]
          : DEFAULTS.priority),
      permittedFormats: [...(cache.permittedFormats ?? c.permittedFormats)],
    })),
    destinations: dropUndefined(destinations) as DestinationsConfig,
    peers: {
      ...(dropUndefined(peers) as PeersConfig),
      ...(peers.tls !== undefined && { tls: dropUndefined(peers.tls) as PeersConfig['tls'] }),
    },
    http: { ...httpRest, ...(caFile !== undefined && { caFile }), ...(auth !== undefined && { auth }) },
    ...(redis !== undefined && { redis }),
  };
});

/** A copy without the keys whose value is undefined (optional keys absent, as the output types say). */
function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The configuration as written in a file (sizes and durations as strings or numbers, defaults optional). */
export type HostConfigInput = z.input<typeof HostConfigSchema>;
export type CacheConfigInput = z.input<typeof CacheSchema>;
