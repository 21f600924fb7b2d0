import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '@imagecache/errors';
import type * as Yaml from 'yaml';
import { DEFAULTS, type ImageFormat, type PriorityPreset } from './defaults';
import { applyEnv, envValue } from './env';
import type { HostConfig, HostConfigInput } from './schema';
import { formatPath, parseHostConfig, type PathSegment } from './validate';

/**
 * The YAML library, loaded when a YAML file is read or a JSON file's issue needs its line: a command that reads
 * a JSON file, or none, doesn't pay for it.
 */
function yaml(): typeof Yaml {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('yaml') as typeof Yaml;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Values that win over the file and the environment. Objects merge key by key; lists and values replace. */
export type HostConfigOverrides = Partial<HostConfigInput>;

export interface LoadConfigOptions {
  /** JSON or YAML file; default `$IMAGECACHE_CONFIG`; none: the configuration is built from env and overrides. */
  file?: string;
  /** Environment to read overrides from; default `process.env`. Never modified. */
  env?: NodeJS.ProcessEnv;
  overrides?: HostConfigOverrides;
}

export interface ConfigFile {
  file: string;
  format: 'json' | 'yaml';
  /** The parsed content (a mapping). */
  data: Obj;
  /** Line (1-based) of the node at a path, or of its deepest existing ancestor. */
  locate(segments: readonly PathSegment[]): number | undefined;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split('\n').length;
  return { line, column: offset - (before.lastIndexOf('\n') + 1) + 1 };
}

/** Offset of the first syntax error of a JSON text (V8 doesn't always say), or -1. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const str = () => {
    i++;
    while (i < text.length) {
      const c = text.charAt(i);
      if (c === '"') return void i++;
      if (c === '\\') {
        const e = text.charAt(i + 1);
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return fail();
          i += 6;
        } else if ('"\\/bfnrt'.includes(e) && e !== '') i += 2;
        else return fail();
      } else if (c < ' ') return fail();
      else i++;
    }
    fail();
  };
  const value = (depth: number): void => {
    if (depth > 500) return fail();
    ws();
    const c = text.charAt(i);
    if (c === '{') {
      i++;
      ws();
      if (text.charAt(i) === '}') return void i++;
      for (;;) {
        ws();
        if (text.charAt(i) !== '"') return fail();
        str();
        ws();
        if (text.charAt(i) !== ':') return fail();
        i++;
        value(depth + 1);
        ws();
        if (text.charAt(i) === ',') i++;
        else if (text.charAt(i) === '}') return void i++;
        else return fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text.charAt(i) === ']') return void i++;
      for (;;) {
        value(depth + 1);
        ws();
        if (text.charAt(i) === ',') i++;
        else if (text.charAt(i) === ']') return void i++;
        else return fail();
      }
    }
    if (c === '"') return str();
    const num = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    num.lastIndex = i;
    if (num.test(text)) return void (i = num.lastIndex);
    for (const word of ['true', 'false', 'null'])
      if (text.startsWith(word, i)) return void (i += word.length);
    fail();
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
    return -1;
  } catch (e) {
    return typeof e === 'number' ? e : -1;
  }
}

/** Removes quoted source excerpts from a parser's message (they could quote a secret). */
function withoutExcerpts(message: string): string {
  // V8: `Unexpected token '}', "...excerpt..." is not valid JSON` (the excerpt is not escaped).
  const v8 = /^(.*?), (?:\.\.\.)?".*is not valid JSON$/s.exec(message);
  return (v8?.[1] ?? message)
    .replace(/"(?:[^"\\]|\\.){4,}"/g, '"…"')
    .replace(/\s+in JSON at position \d+.*$/s, '')
    .split('\n')[0]!
    .trim();
}

function yamlLocator(doc: Yaml.Document, counter: Yaml.LineCounter) {
  const { isMap, isScalar, isSeq } = yaml();
  return (segments: readonly PathSegment[]): number | undefined => {
    let node: unknown = doc.contents;
    let offset = (node as { range?: [number] } | null)?.range?.[0];
    for (const seg of segments) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        offset = (pair.key as { range?: [number] }).range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as { range?: [number] } | undefined;
        if (!item) break;
        offset = item.range?.[0] ?? offset;
        node = item;
      } else break;
    }
    return offset === undefined ? undefined : counter.linePos(offset).line;
  };
}

function parseYaml(file: string, text: string): { data: unknown; locate: ConfigFile['locate'] } {
  const { LineCounter, parseDocument } = yaml();
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0] ?? counter.linePos(err.pos[0]);
    throw new ConfigError(
      `cannot parse ${file} (YAML) at line ${pos.line}, column ${pos.col}: ${withoutExcerpts(err.message)}`,
      { file, line: pos.line, column: pos.col },
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(`cannot parse ${file} (YAML): ${withoutExcerpts((e as Error).message)}`, { file });
  }
  return { data, locate: yamlLocator(doc, counter) };
}

function parseJson(file: string, text: string): { data: unknown; locate: ConfigFile['locate'] } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const m = /at position (\d+)/.exec(message);
    let offset = m ? Number(m[1]) : jsonErrorOffset(text);
    if (offset < 0) offset = text.length;
    const { line, column } = lineAndColumn(text, offset);
    throw new ConfigError(
      `cannot parse ${file} (JSON) at line ${line}, column ${column}: ${withoutExcerpts(message)}`,
      {
        file,
        line,
        column,
      },
    );
  }
  let locate: ConfigFile['locate'] | undefined;
  return {
    data,
    // JSON is YAML: its parser gives node positions. Built only when an issue needs a line.
    locate: (segments) => {
      if (!locate) {
        const { LineCounter, parseDocument } = yaml();
        const counter = new LineCounter();
        const doc = parseDocument(text, { lineCounter: counter });
        locate = doc.errors.length ? () => undefined : yamlLocator(doc, counter);
      }
      return locate(segments);
    },
  };
}

/**
 * Reads a JSON or YAML configuration file: `.json` is JSON, `.yaml`/`.yml` YAML, anything else JSON when it parses
 * as JSON, else YAML. Throws `ConfigError` naming the file when it is missing, unreadable, not parseable (with the
 * line and column) or not a mapping.
 */
export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'is not readable (permission denied)'
          : code === 'EISDIR'
            ? 'is a folder, not a file'
            : `cannot be read (${code ?? (e as Error).message})`;
    throw new ConfigError(`configuration file ${file} ${why}`, { file, cause: e });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const ext = path.extname(file).toLowerCase();
  let format: ConfigFile['format'];
  let parsed: { data: unknown; locate: ConfigFile['locate'] };
  if (ext === '.json') [format, parsed] = ['json', parseJson(file, text)];
  else if (ext === '.yaml' || ext === '.yml') [format, parsed] = ['yaml', parseYaml(file, text)];
  else {
    try {
      [format, parsed] = ['json', parseJson(file, text)];
    } catch {
      [format, parsed] = ['yaml', parseYaml(file, text)];
    }
  }
  const { data } = parsed;
  if (data === null || data === undefined)
    throw new ConfigError(`configuration file ${file} is empty`, { file });
  if (!isObj(data))
    throw new ConfigError(
      `configuration file ${file} must hold a mapping of keys (such as caches:), not ${Array.isArray(data) ? 'a list' : `a ${typeof data}`}`,
      { file },
    );
  return { file, format, data, locate: parsed.locate };
}

function applyOverrides(
  input: Obj,
  overrides: Obj,
  origins: Map<string, string>,
  prefix: PathSegment[] = [],
): void {
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const at = [...prefix, key];
    const current = input[key];
    // A new Redis shape replaces the old one whole (keeping its prefix): url + sentinels would be refused.
    const replacesRedis =
      prefix.length === 0 &&
      key === 'redis' &&
      isObj(value) &&
      ['url', 'sentinels', 'cluster'].some((k) => k in value);
    if (replacesRedis && isObj(current) && current.prefix !== undefined && !('prefix' in value)) {
      input[key] = { ...structuredClone(value), prefix: current.prefix };
      origins.set(formatPath(at), 'override');
    } else if (isObj(value) && isObj(current) && !replacesRedis) {
      applyOverrides(current, value, origins, at);
    } else {
      input[key] = structuredClone(value);
      origins.set(formatPath(at), 'override');
    }
  }
}

/**
 * Loads a host's configuration: the file (JSON or YAML), then the environment (`ENV_VARIABLES`), then
 * `overrides`; validated by `HostConfigSchema`. Throws one `ConfigError` for every problem.
 */
export function loadConfig(opts: LoadConfigOptions = {}): HostConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ?? envValue(env, 'IMAGECACHE_CONFIG');
  const read = file !== undefined ? readConfigFile(file) : undefined;
  const { input, origins, issues } = applyEnv(read?.data ?? {}, env);
  if (opts.overrides) applyOverrides(input, opts.overrides as Obj, origins);
  return parseHostConfig(input, { source: file, origins, locate: read?.locate, extraIssues: issues });
}

export interface SingleCacheOptions {
  /** Default `$IMAGECACHE_MASTER_DIR`, else `/var/lib/imagecache/master_images`. A relative path is resolved. */
  masterDir?: string;
  /** Default `default`. */
  name?: string;
  cacheSize?: string | number;
  cacheTtl?: string | number;
  priority?: number | PriorityPreset;
  forceRaw?: boolean;
  validate?: boolean;
  permittedFormats?: ImageFormat[];
  /** Environment to read overrides from (the host-wide ones, and IMAGECACHE_CACHE_DEFAULT_*); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Host-wide settings (http, file roots, …); `caches` here is ignored. */
  overrides?: HostConfigOverrides;
}

/**
 * A HostConfig with one cache, for the CLI's `--master-dir` mode. Precedence: defaults < environment <
 * the options given here.
 */
export function configForSingleCache(opts: SingleCacheOptions = {}): HostConfig {
  const env = opts.env ?? process.env;
  const dir =
    opts.masterDir !== undefined && opts.masterDir !== ''
      ? opts.masterDir
      : (envValue(env, 'IMAGECACHE_MASTER_DIR') ?? DEFAULTS.masterDir);
  const name = opts.name ?? 'default';
  const cache: Obj = { name, masterDir: path.resolve(dir) };
  const { input, origins, issues } = applyEnv({ caches: [cache] }, env);
  if (opts.masterDir === undefined || opts.masterDir === '') {
    if (envValue(env, 'IMAGECACHE_MASTER_DIR') !== undefined)
      origins.set('caches[0].masterDir', 'IMAGECACHE_MASTER_DIR');
  } else origins.set('caches[0].masterDir', 'override');
  const target = (input.caches as Obj[])[0] as Obj;
  for (const key of [
    'cacheSize',
    'cacheTtl',
    'priority',
    'forceRaw',
    'validate',
    'permittedFormats',
  ] as const) {
    const v = opts[key];
    if (v === undefined) continue;
    target[key] = structuredClone(v);
    origins.set(`caches[0].${key}`, 'override');
  }
  if (opts.overrides) {
    const { caches: _ignored, ...rest } = opts.overrides;
    applyOverrides(input, rest as Obj, origins);
  }
  return parseHostConfig(input, { origins, extraIssues: issues });
}
