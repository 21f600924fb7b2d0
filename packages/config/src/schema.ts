import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as z from 'zod/mini';
import { en } from 'zod/locales';
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

// English messages for the issues validate.ts's map leaves to zod (zod/mini sets no locale of its own).
z.config(en());

/** A value `convert` turns into its output, or refuses with a message. */
function converted<I = unknown, O = number>(
  convert: (v: I) => { ok: true; value: O } | { ok: false; message: string },
) {
  return z.pipe(
    z.custom<I>(() => true),
    z.transform((v: I, ctx) => {
      const r = convert(v);
      if (r.ok) return r.value;
      ctx.issues.push({ code: 'custom', message: r.message, input: v });
      return z.NEVER;
    }),
  );
}

const nonEmpty = () => z.string().check(z.minLength(1));

// ---------------------------------------------------------------------------------------------------------------
// Field types

/** A size: bytes (number or digits) or a number with a unit (`500MiB`, `20GiB`, `100M`). Output: bytes. */
function sizeField() {
  return converted((v) => trySize(v));
}

/** A duration: seconds (number or digits) or units (`30s`, `15m`, `1h`, `7d`). Output: seconds. */
function durationField() {
  return converted((v) => tryDuration(v));
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
  return z.pipe(
    z.string().check(
      z.minLength(1),
      z.superRefine((p, ctx) => {
        if (!path.isAbsolute(p))
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(p)} is not an absolute path` });
        else if (p.includes('\0'))
          ctx.addIssue({ code: 'custom', message: 'must not contain a NUL character' });
      }),
    ),
    z.transform(normalizeDir),
  );
}

const formatList = z.pipe(
  z.array(z.enum(IMAGE_FORMATS)).check(z.minLength(1)),
  z.transform((l: ImageFormat[]) => [...new Set(l)]),
);

const PRIORITY_HINT = `must be an integer or one of ${Object.entries(PRIORITY_PRESETS)
  .map(([k, v]) => `${k} (${v})`)
  .join(', ')}`;

const priorityField = converted<number | keyof typeof PRIORITY_PRESETS>((v) => {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return { ok: true, value: v };
  if (typeof v === 'string' && Object.hasOwn(PRIORITY_PRESETS, v))
    return { ok: true, value: PRIORITY_PRESETS[v as keyof typeof PRIORITY_PRESETS] };
  return { ok: false, message: PRIORITY_HINT };
});

// ---------------------------------------------------------------------------------------------------------------
// Objects

const BasicAuthSchema = z.strictObject({
  type: z.literal('basic'),
  username: z.string().check(z.minLength(1)),
  password: z.string(),
});
const BearerAuthSchema = z.strictObject({
  type: z.literal('bearer'),
  token: z.string().check(z.minLength(1)),
});
export const AuthSchema = z.discriminatedUnion('type', [BasicAuthSchema, BearerAuthSchema]);

/** An origin (`https://images.example:443`): scheme, host and port (default ports may be left out), no more. */
export function originField() {
  return z.pipe(
    z.string().check(
      z.superRefine((o, ctx) => {
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
      }),
    ),
    z.transform((o: string) => new URL(o).origin),
  );
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
  .check(z.minLength(1));

/** Credentials configured for http(s) downloads (`http.auth`, `caches[].auth`), bound to origins. */
export const OriginAuthSchema = z.discriminatedUnion('type', [
  z.extend(BasicAuthSchema, { origins: authOrigins }),
  z.extend(BearerAuthSchema, { origins: authOrigins }),
]);

export const CacheSchema = z.strictObject({
  name: z.string().check(z.regex(CACHE_NAME, { error: CACHE_NAME_RULE })),
  masterDir: absolutePath().check(z.refine((p) => p !== '/', { error: 'must not be the root folder' })),
  cacheSize: z._default(sizeField(), DEFAULTS.cacheSize),
  cacheTtl: z._default(durationField(), DEFAULTS.cacheTtl),
  priority: z.optional(priorityField),
  forceRaw: z._default(z.boolean(), DEFAULTS.forceRaw),
  validate: z._default(z.boolean(), DEFAULTS.validate),
  permittedFormats: z.optional(formatList),
  /** Credentials for this cache's http(s) downloads; a request's own auth wins, this wins over http.auth. */
  auth: z.optional(OriginAuthSchema),
});

/** A network in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a bare address. */
const networkField = z.string().check(
  z.superRefine((text, ctx) => {
    const m = /^\[?([^/\s\]]+)\]?(?:\/(\d{1,3}))?$/.exec(text.trim());
    const family = m ? net.isIP(m[1]!) : 0;
    const prefix = m?.[2] === undefined ? 0 : Number(m[2]);
    if (family === 0 || prefix > (family === 4 ? 32 : 128))
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(text)} is not a network (CIDR such as 10.0.0.0/8)`,
      });
  }),
);

export const HttpSchema = z.strictObject({
  inactivityTimeout: z._default(durationField(), DEFAULTS.httpInactivityTimeout),
  /** Bytes per second (units allowed: `1KiB`); 0 turns the minimum rate off. */
  minRate: z._default(sizeField(), DEFAULTS.httpMinRate),
  minRateWindow: z._default(durationField(), DEFAULTS.httpMinRateWindow),
  blockedNetworks: z._default(z.array(networkField), () => []),
  allowHttpsToHttpRedirect: z._default(z.boolean(), DEFAULTS.allowHttpsToHttpRedirect),
  connectTimeout: z._default(durationField(), DEFAULTS.httpConnectTimeout),
  verifyTls: z._default(z.boolean(), DEFAULTS.verifyTls),
  caFile: z.optional(absolutePath()),
  minTlsVersion: z._default(z.enum(TLS_VERSIONS), DEFAULTS.minTlsVersion),
  auth: z.optional(OriginAuthSchema),
});

/** An http(s) URL (never quoted in errors: it may carry credentials). */
function httpUrl() {
  return z.string().check(
    z.superRefine((u, ctx) => {
      let ok = false;
      try {
        ok = ['http:', 'https:'].includes(new URL(u).protocol);
      } catch {
        ok = false;
      }
      if (!ok) ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
    }),
  );
}

const NoneAuthSchema = z.strictObject({ type: z.literal('none') });
const TokenAuthSchema = z.strictObject({ type: z.literal('token'), token: nonEmpty() });
const KeystoneAuthSchema = z
  .strictObject({
    type: z.literal('keystone'),
    authUrl: httpUrl(),
    username: nonEmpty(),
    password: z.string(),
    userDomainName: z.optional(nonEmpty()),
    userDomainId: z.optional(nonEmpty()),
    projectName: z.optional(nonEmpty()),
    projectId: z.optional(nonEmpty()),
    projectDomainName: z.optional(nonEmpty()),
    projectDomainId: z.optional(nonEmpty()),
  })
  .check(
    z.superRefine((a, ctx) => {
      const both = (x: string, y: string) =>
        ctx.addIssue({ code: 'custom', path: [y], message: `give ${x} or ${y}, not both` });
      if (a.userDomainName !== undefined && a.userDomainId !== undefined)
        both('userDomainName', 'userDomainId');
      if (a.projectName !== undefined && a.projectId !== undefined) both('projectName', 'projectId');
      if (a.projectDomainName !== undefined && a.projectDomainId !== undefined)
        both('projectDomainName', 'projectDomainId');
    }),
  );
export const ImageServiceAuthSchema = z.discriminatedUnion('type', [
  NoneAuthSchema,
  TokenAuthSchema,
  KeystoneAuthSchema,
]);

export const ImageServiceSchema = z.strictObject({
  endpoint: z.optional(httpUrl()),
  auth: z._default(ImageServiceAuthSchema, { type: 'none' }),
  interface: z._default(z.enum(['public', 'internal', 'admin']), DEFAULTS.imageServiceInterface),
  region: z.optional(nonEmpty()),
});

/** `HOST[:PORT]` as an oci:// href names the registry. */
const REGISTRY_HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(:\d{1,5})?$/;

export const OciRegistrySchema = z.strictObject({
  host: z
    .string()
    .check(z.regex(REGISTRY_HOST, { error: 'must be HOST or HOST:PORT, as in the oci:// href' })),
  auth: z.optional(AuthSchema),
  plainHttp: z.optional(z.boolean()),
  caFile: z.optional(absolutePath()),
  verifyTls: z.optional(z.boolean()),
});

export const OciPlatformSchema = z.strictObject({
  architecture: z.optional(nonEmpty()),
  os: z.optional(nonEmpty()),
});

export const OciSchema = z.strictObject({
  platform: z.prefault(OciPlatformSchema, {}),
  /** Token services trusted on another scheme or host than their registry's. */
  allowedTokenRealms: z.optional(z.array(originField())),
  diskTypes: z.optional(z.array(nonEmpty()).check(z.minLength(1))),
  registries: z
    ._default(z.array(OciRegistrySchema), () => [])
    .check(
      z.superRefine((list, ctx) => {
        const seen = new Map<string, number>();
        list.forEach((r, i) => {
          const k = r.host.toLowerCase();
          const first = seen.get(k);
          if (first !== undefined)
            ctx.addIssue({
              code: 'custom',
              path: [i, 'host'],
              message: `is used by registries[${first}] too`,
            });
          else seen.set(k, i);
        });
      }),
    ),
});

export const FileSchema = z.strictObject({
  allowedRoots: z._default(z.array(absolutePath()), () => [...DEFAULTS.fileRoots]),
  allowHardLinks: z._default(z.boolean(), DEFAULTS.fileAllowHardLinks),
});

/**
 * Where fetched images may be written (spec.md §5). The roots are made canonical here (symlinks resolved, for
 * the part that exists) so what is shown is what is enforced; the engine resolves them again at use.
 */
export const DestinationsSchema = z.strictObject({
  allowedRoots: z.optional(
    z
      .array(z.pipe(absolutePath(), z.transform(canonicalIfExists)))
      .check(z.minLength(1, { error: 'must list at least one folder (or leave the key out)' })),
  ),
  unrestricted: z._default(z.boolean(), DEFAULTS.destinationsUnrestricted),
});

export const QemuImgSchema = z.strictObject({
  memoryCap: z._default(sizeField(), DEFAULTS.qemuImgMemoryCap),
});

const RedisNodeSchema = z.strictObject({
  host: nonEmpty(),
  port: z._default(z.number().check(z.int(), z.minimum(1), z.maximum(65535)), 6379),
});

const REDIS_SHAPES = 'give exactly one of url, sentinels (with name) or cluster';

const RedisObjectSchema = z
  .strictObject({
    url: z.optional(z.string()),
    sentinels: z.optional(z.array(RedisNodeSchema).check(z.minLength(1))),
    name: z.optional(nonEmpty()),
    cluster: z.optional(z.array(RedisNodeSchema).check(z.minLength(1))),
    username: z.optional(z.string()),
    password: z.optional(z.string()),
    db: z.optional(z.number().check(z.int(), z.minimum(0))),
    tls: z.optional(z.boolean()),
    prefix: z._default(nonEmpty(), DEFAULTS.redisPrefix),
  })
  .check(
    z.superRefine((r, ctx) => {
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
    }),
  );

export const RedisSchema = z.pipe(
  RedisObjectSchema,
  z.transform((r: z.output<typeof RedisObjectSchema>): RedisConfig => {
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
  }),
);

/** A fleet group (rack, zone): it ends up in Redis keys. */
const PEER_GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const PeersTlsSchema = z.strictObject({
  certFile: absolutePath(),
  keyFile: absolutePath(),
  /** The CA the other hosts' peer certificates are checked against (else the system's roots). */
  caFile: z.optional(absolutePath()),
});

/** Fleet mode: the peer service and how hosts take masters from each other (issue 12). */
export const PeersSchema = z.strictObject({
  enabled: z._default(z.boolean(), DEFAULTS.peersEnabled),
  /** Shared by the hosts of a fleet: it signs and checks peer tokens. Never quoted. */
  secret: z.optional(z.string().check(z.minLength(16, { error: 'must be at least 16 characters' }))),
  group: z.optional(
    z.string().check(
      z.regex(PEER_GROUP, {
        error: 'must be 1-64 letters, digits, ".", "-" or "_", starting with a letter or digit',
      }),
    ),
  ),
  port: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(65535))),
  bind: z._default(nonEmpty(), DEFAULTS.peersBind),
  advertiseUrl: z.optional(httpUrl()),
  uploadConcurrency: z._default(z.number().check(z.int(), z.minimum(1)), DEFAULTS.peersUploadConcurrency),
  /** Bytes per second all uploads together may send; none: no cap. */
  bandwidth: z.optional(
    sizeField().check(z.refine((n) => n > 0, { error: 'must be more than 0 (leave it out for no cap)' })),
  ),
  tls: z.optional(PeersTlsSchema),
  tokenTtl: z._default(
    durationField().check(z.refine((n) => n > 0, { error: 'must be more than 0' })),
    DEFAULTS.peersTokenTtl,
  ),
});

const PeersCheckedSchema = PeersSchema.check(
  z.superRefine((p, ctx) => {
    if (p.enabled && p.secret === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['secret'],
        message: 'is required when peers.enabled is true (or set IMAGECACHE_PEERS_SECRET)',
      });
  }),
);

const RootSchema = z.strictObject({
  host: z._default(z.string().check(z.regex(HOST_NAME, { error: HOST_NAME_RULE })), () => os.hostname()),
  caches: z.array(CacheSchema).check(
    z.minLength(1),
    z.superRefine((caches, ctx) => {
      for (const issue of cacheListIssues(caches)) ctx.addIssue({ code: 'custom', ...issue });
    }),
  ),
  downloadConcurrency: z._default(z.number().check(z.int(), z.minimum(1)), DEFAULTS.downloadConcurrency),
  /** Where the host's download slots live: every process of the host must name the same folder. */
  downloadSlotsDir: z._default(absolutePath(), () => path.join(os.tmpdir(), DEFAULTS.downloadSlotsFolder)),
  growthFactor: z._default(z.number().check(z.minimum(1)), DEFAULTS.growthFactor),
  permittedFormats: z._default(formatList, () => [...DEFAULTS.permittedFormats]),
  zstd: z._default(z.boolean(), DEFAULTS.zstd),
  directIo: z._default(z.boolean(), DEFAULTS.directIo),
  allowMd5: z._default(z.boolean(), DEFAULTS.allowMd5),
  sweepInterval: z._default(durationField(), DEFAULTS.sweepIntervalSeconds),
  createDestDirs: z._default(z.boolean(), DEFAULTS.createDestDirs),
  file: z.prefault(FileSchema, {}),
  destinations: z.prefault(DestinationsSchema, {}),
  http: z.prefault(HttpSchema, {}),
  qemuImg: z.prefault(QemuImgSchema, {}),
  imageService: z.prefault(ImageServiceSchema, {}),
  oci: z.prefault(OciSchema, {}),
  redis: z.optional(RedisSchema),
  peers: z.prefault(PeersCheckedSchema, {}),
  logLevel: z._default(z.enum(LOG_LEVELS), DEFAULTS.logLevel),
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
  /** Write big images and conversions straight to the disk (O_DIRECT) where the filesystem takes it. */
  directIo: boolean;
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
export const HostConfigSchema = z.pipe(
  RootSchema,
  z.transform((c: z.output<typeof RootSchema>): HostConfig => {
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
  }),
);

/** A copy without the keys whose value is undefined (optional keys absent, as the output types say). */
function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The configuration as written in a file (sizes and durations as strings or numbers, defaults optional). */
export type HostConfigInput = z.input<typeof HostConfigSchema>;
export type CacheConfigInput = z.input<typeof CacheSchema>;
