// Builds dist/imagecache.js, the file `imagecache` runs (bin/imagecache, the package's bin, the Docker entrypoint):
// the CLI with the engine's packages in one file, from their TypeScript sources. Run by `pnpm build` after tsc
// (which type-checks and emits dist/main.js, the same program unbundled).
//
// Why: a warm-hit fetch spent more on finding, reading and compiling ~200 modules than on its work, and zod's
// CommonJS build loads every locale; bundled from ESM, zod/mini keeps only what the schema uses. esbuild keeps a
// lazily imported module lazy (its body runs at its first import), so a verb still runs only its own code.
//
// Left outside (loaded from node_modules, as before, when first needed):
// - @imagecache/errors: one copy of the error classes in a process, shared with the worker and the API (their
//   `instanceof` checks see the engine's errors);
// - @imagecache/queue, worker and api, and the libraries loaded only by some calls (pino, cli-progress, yaml,
//   undici, proper-lockfile): a warm hit doesn't even parse them. They are dependencies of this package.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeMetafile, build } from 'esbuild';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packages = path.resolve(cli, '../../packages');
const BUNDLED = ['checksum', 'config', 'core', 'formats', 'sources'];

const result = await build({
  entryPoints: [path.join(cli, 'src/main.ts')],
  outfile: path.join(cli, 'dist/imagecache.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
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
    'proper-lockfile',
  ],
  // Whitespace and syntax only: less to parse on every call; names stay, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  metafile: process.argv.includes('--metafile'),
});
if (result.metafile) console.log(await analyzeMetafile(result.metafile));
