import { ConfigError, redactHref, redactSecrets } from '@imagecache/errors';
import type * as z from 'zod/mini';
import { HostConfigSchema, KNOWN_KEYS, cacheListIssues, type HostConfig } from './schema';

/** One problem of a configuration: where (`caches[0].cacheSize`) and what. */
export interface ConfigIssue {
  /** Dotted path with [index] for lists; empty for the whole configuration. */
  path: string;
  message: string;
  /** Line in the configuration file, when the value comes from it. */
  line?: number;
  /** The environment variable the value came from, when it did. */
  env?: string;
}

export type PathSegment = string | number;

/** Where a value came from when not from the file: an environment variable's name, or 'override'. */
export type Origins = ReadonlyMap<string, string>;

export interface ValidationContext {
  /** The file the configuration was read from, for messages. */
  source?: string;
  /** Formatted path → where the value came from (see `Origins`). */
  origins?: Origins;
  /** Line of the node at a path in the source file (the deepest existing node). */
  locate?: (path: readonly PathSegment[]) => number | undefined;
  /** Problems found before validation (e.g. in environment variables), reported with the others. */
  extraIssues?: readonly ConfigIssue[];
}

/** `['caches', 0, 'cacheSize']` → `caches[0].cacheSize`. */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out === '' ? String(s) : `.${String(s)}`;
  }
  return out;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

/**
 * Messages for zod's issues. They never quote the value, except for enum choices, which are never secret:
 * a wrong type on a password says "expected a string, got an integer", not the number.
 */
const errorMap = (iss: z.core.$ZodRawIssue): string | undefined => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'is required';
      const expected = EXPECTED[iss.expected] ?? iss.expected;
      return `expected ${expected}, got ${kind(iss.input)}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `must have at least ${min} ${min === 1 ? 'entry' : 'entries'}`;
      if (iss.origin === 'string')
        return min === 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `must have at most ${max} entries`;
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_value': {
      const choices = iss.values.map((v) => String(v)).join(', ');
      const got =
        typeof iss.input === 'string' && iss.input.length <= 40
          ? `${JSON.stringify(iss.input)} is not`
          : 'must be';
      return `${got} one of ${choices}`;
    }
    case 'invalid_union': {
      const options = (iss as { options?: unknown[] }).options;
      if (options) return `must be one of ${options.map(String).join(', ')}`;
      return 'matches none of the accepted forms';
    }
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return undefined;
  }
};

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

function knownKeysAt(segments: readonly PropertyKey[]): readonly string[] {
  const p = segments.map((s) => (typeof s === 'number' ? '#' : String(s))).join('/');
  switch (p) {
    case '':
      return KNOWN_KEYS.root;
    case 'caches/#':
      return KNOWN_KEYS.cache;
    case 'http':
      return KNOWN_KEYS.http;
    case 'http/auth':
    case 'caches/#/auth':
      return KNOWN_KEYS.auth;
    case 'file':
      return KNOWN_KEYS.file;
    case 'destinations':
      return KNOWN_KEYS.destinations;
    case 'qemuImg':
      return KNOWN_KEYS.qemuImg;
    case 'redis':
      return KNOWN_KEYS.redis;
    case 'peers':
      return KNOWN_KEYS.peers;
    case 'peers/tls':
      return KNOWN_KEYS.peersTls;
    case 'imageService':
      return KNOWN_KEYS.imageService;
    case 'imageService/auth':
      return KNOWN_KEYS.imageServiceAuth;
    case 'oci':
      return KNOWN_KEYS.oci;
    case 'oci/platform':
      return KNOWN_KEYS.ociPlatform;
    case 'oci/registries/#':
      return KNOWN_KEYS.ociRegistry;
    case 'oci/registries/#/auth':
      return KNOWN_KEYS.registryAuth;
    case 'redis/sentinels/#':
    case 'redis/cluster/#':
      return KNOWN_KEYS.redisNode;
    default:
      return [];
  }
}

function suggest(key: string, known: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const exact = known.find((k) => squash(k) === squash(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(squash(key), squash(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(1, Math.floor(key.length / 4)) ? best : undefined;
}

/** A root key that belongs in a nested object (`verifyTls` → `http.verifyTls`). */
function misplaced(key: string): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const nested: [string, readonly string[]][] = [
    ['caches[].', KNOWN_KEYS.cache],
    ['http.', KNOWN_KEYS.http],
    ['file.', KNOWN_KEYS.file],
    ['destinations.', KNOWN_KEYS.destinations],
    ['qemuImg.', KNOWN_KEYS.qemuImg],
    ['redis.', KNOWN_KEYS.redis],
    ['peers.', KNOWN_KEYS.peers],
    ['imageService.', KNOWN_KEYS.imageService],
    ['oci.', KNOWN_KEYS.oci],
  ];
  for (const [prefix, keys] of nested) {
    const k = keys.find((x) => squash(x) === squash(key));
    if (k) return prefix + k;
  }
  return undefined;
}

/** Every string under a secret-looking key (or `url`), and URLs' user-info: never to be quoted. */
function collectSecrets(input: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key: string | undefined, depth: number) => {
    if (depth > 20) return;
    if (typeof v === 'string') {
      if (key && /pass|token|secret|credential|^url$/i.test(key)) out.push(v);
      if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(v)) {
        out.push(v);
        const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(v);
        const userinfo = m?.[1] ?? '';
        const colon = userinfo.indexOf(':');
        out.push(colon >= 0 ? userinfo.slice(colon + 1) : userinfo);
        for (const part of [userinfo, colon >= 0 ? userinfo.slice(colon + 1) : '']) {
          try {
            if (part) out.push(decodeURIComponent(part));
          } catch {
            // not percent-encoded
          }
        }
      }
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, key, depth + 1));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k, depth + 1);
  };
  walk(input, undefined, 0);
  // Longest first, so a URL is replaced whole before its password.
  return [...new Set(out)].sort((a, b) => b.length - a.length);
}

function originOf(p: string, origins: Origins | undefined): string | undefined {
  if (!origins) return undefined;
  let best: string | undefined;
  let bestLen = -1;
  for (const [prefix, origin] of origins) {
    const matches =
      prefix === p || (p.startsWith(prefix) && (p[prefix.length] === '.' || p[prefix.length] === '['));
    if (matches && prefix.length > bestLen) [best, bestLen] = [origin, prefix.length];
  }
  return best;
}

/** Zod's issues as ConfigIssues: one per unknown key, located, attributed to their env variable. */
export function toConfigIssues(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  ctx: ValidationContext = {},
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const push = (segments: readonly PropertyKey[], message: string) => {
    const p = formatPath(segments);
    const origin = originOf(p, ctx.origins);
    const issue: ConfigIssue = { path: p, message };
    if (origin && origin !== 'override') issue.env = origin;
    if (!origin && ctx.locate) {
      const line = ctx.locate(segments.filter((s): s is PathSegment => typeof s !== 'symbol'));
      if (line !== undefined) issue.line = line;
    }
    out.push(issue);
  };
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeysAt(iss.path);
      for (const key of iss.keys) {
        const hint = suggest(key, known) ?? (iss.path.length === 0 ? misplaced(key) : undefined);
        push([...iss.path, key], hint ? `unknown key (did you mean ${hint}?)` : 'unknown key');
      }
    } else push(iss.path, iss.message);
  }
  // Duplicates in the cache list are only checked by the schema once every cache is valid: report them anyway.
  const caches = (input as { caches?: unknown } | null)?.caches;
  if (Array.isArray(caches)) {
    for (const dup of cacheListIssues(caches)) {
      const p = formatPath(['caches', ...dup.path]);
      if (!out.some((o) => o.path === p && o.message === dup.message))
        push(['caches', ...dup.path], dup.message);
    }
  }
  return out;
}

/** Renders issues as the lines of a ConfigError message, without any secret found in `input`. */
export function describeIssues(issues: readonly ConfigIssue[], input: unknown): ConfigIssue[] {
  const secrets = collectSecrets(input);
  const scrub = (s: string) => redactHref(redactSecrets(s, secrets));
  return issues.map((i) => ({ ...i, message: scrub(i.message) }));
}

function lineOf(i: ConfigIssue): string {
  const where = i.path === '' ? '' : `${i.path}: `;
  const from = i.env ? ` (from ${i.env})` : i.line !== undefined ? ` [line ${i.line}]` : '';
  return `${where}${i.message}${from}`;
}

/** Builds the one ConfigError that lists every issue. */
export function configErrorFor(issues: readonly ConfigIssue[], input: unknown, source?: string): ConfigError {
  const safe = describeIssues(issues, input);
  const lines = safe.map(lineOf);
  const head = `invalid configuration${source ? ` in ${source}` : ''}`;
  const message = lines.length === 1 ? `${head}: ${lines[0]}` : `${head}:\n  ${lines.join('\n  ')}`;
  return new ConfigError(message, { ...(source !== undefined && { file: source }), issues: safe });
}

/**
 * Validates a configuration object (the file's form, environment already applied) into a `HostConfig`.
 * Throws one `ConfigError` listing every problem as `path: message` lines; `details.issues` holds them as
 * `{ path, message, line?, env? }`. Secrets are never quoted.
 */
export function parseHostConfig(input: unknown, ctx: ValidationContext = {}): HostConfig {
  const r = HostConfigSchema.safeParse(input, { error: errorMap });
  const extra = ctx.extraIssues ?? [];
  if (r.success && extra.length === 0) return r.data;
  const issues = [...extra, ...(r.success ? [] : toConfigIssues(r.error.issues, input, ctx))];
  throw configErrorFor(issues, input, ctx.source);
}
