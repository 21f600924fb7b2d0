import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Module } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';

/**
 * A V8 code cache for the engine's own modules, made by the build (scripts/code-cache.mjs), so a fresh process's
 * first fetch doesn't parse and compile, function by function, the code every fetch runs: measured, a quarter of
 * the CPU of an 8 MiB first miss (issue 10). Python has the same in its .pyc files; Node 22's
 * `module.enableCompileCache()` does it for every module, Node 20 has nothing.
 *
 * Safe by construction:
 * - only files the build listed (`index.json`, beside the caches in this package's own dist/code-cache) are
 *   compiled here, and only while their text is, byte for byte, what the cache was made from (SHA-1 of the text:
 *   V8 itself checks only the length); everything else goes to Node's own loader untouched;
 * - caches are read from the package's folder only, made at build time: never from a shared temporary folder,
 *   where another user could leave bytecode to run;
 * - V8 refuses a cache that is not its own (another Node, other V8 flags): the module is compiled from its text.
 */
interface Manifest {
  /** File (relative to the manifest's folder) → SHA-1 of its text; its cache is `<sha1>.bin`. */
  files: Record<string, string>;
}

/** Node's CommonJS loader, as far as it is used here. */
interface LoaderModule {
  exports: unknown;
  require(id: string): unknown;
  _compile(content: string, filename: string, ...rest: unknown[]): unknown;
}
const Loader = Module as unknown as {
  prototype: LoaderModule;
  _resolveFilename(request: string, parent: LoaderModule, isMain: boolean, options?: unknown): string;
  _cache: unknown;
  _extensions: unknown;
};

export interface CodeCacheStats {
  /** Modules compiled with their cache. */
  used: number;
  /** Modules listed, whose cache V8 refused or whose text changed since: compiled from their text. */
  refused: number;
}

const stats: CodeCacheStats = { used: 0, refused: 0 };
const mainModule = require.main;
let installed = false;

/** How the code cache fared in this process (tests, and anyone who wonders whether it is in use). */
export function codeCacheStats(): CodeCacheStats {
  return { ...stats };
}

/**
 * Compiles the listed modules loaded from now on with their caches. Without a manifest in `dir`, does nothing
 * (the sources under jest, a bundle that carries this file). With `train` (the build's training run): compiles
 * every module under `train` and writes, at exit, the caches of all of them and the manifest.
 */
export function installCodeCache(dir: string, train?: string): void {
  if (installed) return;
  const manifest = train ? { files: {} } : readManifest(dir);
  if (!manifest) return;
  installed = true;
  const trained: Array<{ file: string; hash: string; script: vm.Script }> = [];
  const original = Loader.prototype._compile;
  Loader.prototype._compile = function compile(this: LoaderModule, content, filename, ...rest) {
    const format = rest[0];
    const listed = manifest.files[path.relative(dir, filename)];
    const wanted = train ? !path.relative(train, filename).startsWith('..') : listed !== undefined;
    if (!wanted || (format !== undefined && format !== 'commonjs'))
      return original.call(this, content, filename, ...rest);
    const hash = createHash('sha1').update(content).digest('hex');
    const cachedData = hash === listed ? readOrUndefined(path.join(dir, `${hash}.bin`)) : undefined;
    const script = new vm.Script(Module.wrap(content), { filename, cachedData });
    if (cachedData && !script.cachedDataRejected) stats.used++;
    else if (listed !== undefined) stats.refused++;
    if (train) trained.push({ file: path.relative(dir, filename), hash, script });
    return run(this, script, filename);
  };
  if (train) process.once('exit', () => writeCaches(dir, trained));
}

/** What Node's loader does with a compiled module: its wrapper called with its own `require`. */
function run(mod: LoaderModule, script: vm.Script, filename: string): unknown {
  const require = Object.assign((id: string) => mod.require(id), {
    resolve: (request: string, options?: unknown) => Loader._resolveFilename(request, mod, false, options),
    main: mainModule,
    cache: Loader._cache,
    extensions: Loader._extensions,
  });
  const wrapper = script.runInThisContext() as (...args: unknown[]) => unknown;
  return wrapper.call(mod.exports, mod.exports, require, mod, filename, path.dirname(filename));
}

function writeCaches(dir: string, trained: Array<{ file: string; hash: string; script: vm.Script }>): void {
  fs.mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {};
  for (const t of trained) {
    fs.writeFileSync(path.join(dir, `${t.hash}.bin`), t.script.createCachedData());
    files[t.file] = t.hash;
  }
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ files } satisfies Manifest));
}

function readManifest(dir: string): Manifest | undefined {
  const text = readOrUndefined(path.join(dir, 'index.json'));
  if (!text) return undefined;
  try {
    const m = JSON.parse(text.toString('utf8')) as Manifest;
    return m && typeof m.files === 'object' ? m : undefined;
  } catch {
    return undefined; // a damaged manifest: Node compiles everything, as without one
  }
}

function readOrUndefined(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}
