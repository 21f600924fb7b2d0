import { envName } from './schema';
import type { ConfigIssue } from './validate';

export interface EnvVariable {
  name: string;
  description: string;
}

/** Every environment variable the configuration reads. An empty value counts as unset. */
export const ENV_VARIABLES: readonly EnvVariable[] = Object.freeze(
  [
    {
      name: 'IMAGECACHE_CONFIG',
      description: 'Configuration file (JSON or YAML) loadConfig reads when no file is given explicitly.',
    },
    { name: 'IMAGECACHE_HOST', description: 'Overrides `host`, the host name the caches belong to.' },
    {
      name: 'IMAGECACHE_REDIS_URL',
      description:
        'Overrides `redis` with `{ url }` (redis:// or rediss://), keeping the configured `prefix`; replaces a sentinel or cluster shape.',
    },
    { name: 'REDIS_URL', description: 'Fallback for IMAGECACHE_REDIS_URL when that one is unset.' },
    { name: 'IMAGECACHE_REDIS_PREFIX', description: 'Overrides `redis.prefix` (when Redis is configured).' },
    {
      name: 'IMAGECACHE_DOWNLOAD_CONCURRENCY',
      description: 'Overrides `downloadConcurrency` (an integer ≥ 1).',
    },
    { name: 'IMAGECACHE_LOG_LEVEL', description: 'Overrides `logLevel`.' },
    {
      name: 'IMAGECACHE_FILE_ROOTS',
      description: 'Overrides `file.allowedRoots`: absolute folders separated by `:`.',
    },
    {
      name: 'IMAGECACHE_DEST_ROOTS',
      description: 'Overrides `destinations.allowedRoots`: absolute folders separated by `:`.',
    },
    {
      name: 'IMAGECACHE_SWEEP_INTERVAL',
      description: 'Overrides `sweepInterval` (seconds or units; 0 = off).',
    },
    { name: 'IMAGECACHE_HTTP_CA_FILE', description: 'Overrides `http.caFile` (an absolute path).' },
    {
      name: 'IMAGECACHE_IMAGE_SERVICE_ENDPOINT',
      description:
        'Overrides `imageService.endpoint` (an http(s) URL): where image ids (a UUID, glance://ID) are fetched from.',
    },
    {
      name: 'IMAGECACHE_CACHE_<NAME>_SIZE',
      description:
        'Overrides `cacheSize` of the cache named NAME (upper-cased, `-` → `_`; e.g. IMAGECACHE_CACHE_INSTANCE_SIZE=50GiB). Naming no configured cache is an error.',
    },
    {
      name: 'IMAGECACHE_CACHE_<NAME>_TTL',
      description:
        'Overrides `cacheTtl` of the cache named NAME, as above (e.g. IMAGECACHE_CACHE_TFTP_TTL=1d).',
    },
    {
      name: 'IMAGECACHE_PEERS_SECRET',
      description:
        'Overrides `peers.secret`: the fleet secret that signs peer tokens (keeps it out of the configuration file).',
    },
    {
      name: 'IMAGECACHE_MASTER_DIR',
      description:
        "Master folder of the CLI's single-cache mode (configForSingleCache) when --master-dir is not given; default /var/lib/imagecache/master_images.",
    },
  ].map((v) => Object.freeze(v)),
);

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value of an environment variable, or undefined when unset or empty. */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function numberOrString(v: string): number | string {
  return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
}

export interface EnvApplied {
  /** A copy of the input with the environment's values in place. */
  input: Obj;
  /** Formatted path → name of the variable that set it. */
  origins: Map<string, string>;
  /** Variables that could not be applied (a per-cache variable naming no cache). */
  issues: ConfigIssue[];
}

/**
 * Applies the environment variables of `ENV_VARIABLES` to a raw configuration object (before validation,
 * so their values are validated, and reported by name, like the file's).
 */
export function applyEnv(raw: Obj, env: NodeJS.ProcessEnv): EnvApplied {
  const input: Obj = structuredClone(raw);
  const origins = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  const section = (key: string): Obj => {
    const cur = input[key];
    if (isObj(cur)) return cur;
    const fresh: Obj = {};
    // A wrong type in the file is replaced only for the key we set; validation reports the rest.
    input[key] = fresh;
    return fresh;
  };
  const set = (name: string, pathText: string, apply: (v: string) => void) => {
    const v = envValue(env, name);
    if (v === undefined) return;
    apply(v);
    origins.set(pathText, name);
  };

  set('IMAGECACHE_HOST', 'host', (v) => (input.host = v));
  set(
    'IMAGECACHE_DOWNLOAD_CONCURRENCY',
    'downloadConcurrency',
    (v) => (input.downloadConcurrency = numberOrString(v)),
  );
  set('IMAGECACHE_LOG_LEVEL', 'logLevel', (v) => (input.logLevel = v));
  set('IMAGECACHE_SWEEP_INTERVAL', 'sweepInterval', (v) => (input.sweepInterval = v));
  set('IMAGECACHE_FILE_ROOTS', 'file.allowedRoots', (v) => {
    section('file').allowedRoots = v
      .split(':')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  });
  set('IMAGECACHE_DEST_ROOTS', 'destinations.allowedRoots', (v) => {
    section('destinations').allowedRoots = v
      .split(':')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  });
  set('IMAGECACHE_HTTP_CA_FILE', 'http.caFile', (v) => (section('http').caFile = v));
  set(
    'IMAGECACHE_IMAGE_SERVICE_ENDPOINT',
    'imageService.endpoint',
    (v) => (section('imageService').endpoint = v),
  );

  set('IMAGECACHE_PEERS_SECRET', 'peers.secret', (v) => (section('peers').secret = v));

  const urlVar = envValue(env, 'IMAGECACHE_REDIS_URL') !== undefined ? 'IMAGECACHE_REDIS_URL' : 'REDIS_URL';
  set(urlVar, 'redis.url', (v) => {
    const prefix = isObj(input.redis) ? input.redis.prefix : undefined;
    input.redis = prefix === undefined ? { url: v } : { url: v, prefix };
  });
  if (input.redis !== undefined)
    set('IMAGECACHE_REDIS_PREFIX', 'redis.prefix', (v) => (section('redis').prefix = v));

  const caches = Array.isArray(input.caches) ? input.caches : [];
  for (const name of Object.keys(env).sort()) {
    const m = /^IMAGECACHE_CACHE_(.+)_(SIZE|TTL)$/.exec(name);
    if (!m || envValue(env, name) === undefined) continue;
    const [, wanted = '', what] = m;
    const index = caches.findIndex(
      (c) => isObj(c) && typeof c.name === 'string' && envName(c.name) === wanted,
    );
    const cache = caches[index];
    if (!isObj(cache)) {
      const known = caches
        .filter(isObj)
        .map((c) => (typeof c.name === 'string' ? envName(c.name) : undefined))
        .filter((n) => n !== undefined);
      issues.push({
        path: '',
        message: `${name} names no configured cache (${known.length ? `known: ${known.join(', ')}` : 'none configured'})`,
      });
      continue;
    }
    const key = what === 'SIZE' ? 'cacheSize' : 'cacheTtl';
    set(name, `caches[${index}].${key}`, (v) => (cache[key] = v));
  }
  return { input, origins, issues };
}
