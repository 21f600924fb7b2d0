// Builds dist/imagecache.bundle.js, what `imagecache` runs (through dist/imagecache.js, src/imagecache.ts): the CLI
// with the engine's packages in one file, from their TypeScript sources; then its V8 code cache, from training
// runs. Run by `pnpm build` after tsc (which type-checks and emits dist/main.js, the same program unbundled).
//
// Why: a warm-hit fetch spent more on finding, reading and compiling ~200 modules than on its work, and zod's
// CommonJS build loads every locale; bundled from ESM, zod/mini keeps only what the schema uses. esbuild keeps a
// lazily imported module lazy (its body runs at its first import), so a verb still runs only its own code.
//
// Left outside (loaded from node_modules, as before, when first needed):
// - @imagecache/errors: one copy of the error classes in a process, shared with the worker and the API (their
//   `instanceof` checks see the engine's errors);
// - @imagecache/queue, worker and api, and the big libraries loaded only by some calls (pino, cli-progress, yaml,
//   undici): a warm hit doesn't even parse them. They are dependencies of this package.
// proper-lockfile (with graceful-fs, retry, signal-exit) is inside: every miss takes a lock, and finding and reading
// its 13 files cost a fresh process more than the bundle's few more bytes cost a hit.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeMetafile, build } from 'esbuild';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packages = path.resolve(cli, '../../packages');
const BUNDLED = ['checksum', 'config', 'contract', 'core', 'formats', 'host', 'sources'];

/**
 * commander loads node:child_process (and net, dgram behind it) at once, for subcommands run as executables, which
 * this CLI has none of: it gets the module when it first uses it.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
      loader: 'js',
      resolveDir: cli,
    }));
  },
};

const result = await build({
  entryPoints: [path.join(cli, 'src/main.ts')],
  outfile: path.join(cli, 'dist/imagecache.bundle.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // import() of a package left outside becomes require(), as tsc writes it: no ES module loader at run time.
  supported: { 'dynamic-import': false },
  alias: Object.fromEntries(BUNDLED.map((p) => [`@imagecache/${p}`, path.join(packages, p, 'src/index.ts')])),
  external: [
    '@imagecache/errors',
    '@imagecache/queue',
    '@imagecache/worker',
    '@imagecache/api',
    'pino',
    'cli-progress',
    'yaml',
    'undici',
    'undici/*',
  ],
  // Whitespace and syntax only: less to parse on every call; names stay, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  plugins: [lazyChildProcessForCommander],
  logLevel: 'warning',
  metafile: process.argv.includes('--metafile'),
});
if (result.metafile) console.log(await analyzeMetafile(result.metafile));

// The code cache: what a warm hit and a cold miss compile, from a miss then a hit of a small image served here
// (each run loads the cache the run before wrote, and writes it again with what it compiled itself).
const cacheFile = path.join(cli, 'dist/imagecache.bundle.cache');
fs.rmSync(cacheFile, { force: true });
const image = Buffer.alloc(1 << 20);
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': image.length, 'last-modified': new Date(0).toUTCString() });
  res.end(req.method === 'HEAD' ? undefined : image);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imagecache-code-cache-'));
// Without the builder's imagecache settings (a configuration, destination roots) or Node options (V8 flags would
// make a cache the CLI's plain runs refuse).
const trainingEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('IMAGECACHE_') && k !== 'NODE_OPTIONS'),
);
trainingEnv.IMAGECACHE_WRITE_CODE_CACHE = '1';
try {
  const href = `http://127.0.0.1:${server.address().port}/disk.img`;
  for (const dest of ['miss.img', 'hit.img']) {
    // Asynchronous: this process serves the image meanwhile.
    const code = await new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [path.join(cli, 'dist/imagecache.js'), 'fetch', href, path.join(work, dest)].concat([
          '--master-dir',
          path.join(work, 'master'),
          '-q',
        ]),
        { env: trainingEnv, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`a training fetch failed (exit ${code})`);
  }
} catch (err) {
  // The CLI runs without a cache, only slower to start: not a reason to fail the build.
  fs.rmSync(cacheFile, { force: true });
  console.warn(`imagecache: no V8 code cache for the CLI's bundle: ${err.message}`);
} finally {
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
}
