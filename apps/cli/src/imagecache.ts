#!/usr/bin/env node
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';

/**
 * What `imagecache` runs (bin/imagecache, the package's bin, the Docker entrypoint): the CLI's bundle
 * (imagecache.bundle.js, made by scripts/bundle.mjs), compiled with the V8 code cache the build made for it, so a
 * call doesn't parse and compile again the functions every fetch runs. V8 refuses a cache that is not its own
 * (another Node version, other V8 flags): the bundle is then compiled from its source, as node would.
 */
const bundle = path.join(__dirname, 'imagecache.bundle.js');
const cacheFile = `${bundle.slice(0, -'.js'.length)}.cache`;

// Node's own module wrapper; the shebang line is left empty (line numbers stay those of the file).
const source = fs.readFileSync(bundle, 'utf8').replace(/^#!.*/, '');
const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
let cachedData: Buffer | undefined;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined; // not built (yet): compiled from source
}
const script = new vm.Script(wrapped, { filename: bundle, cachedData });
// The build's training runs (scripts/bundle.mjs) write what they compiled, the cache they loaded included.
if (process.env.IMAGECACHE_WRITE_CODE_CACHE === '1')
  process.once('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
const mod = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void)(
  mod.exports,
  createRequire(bundle),
  mod,
  bundle,
  __dirname,
);
