// Makes dist/code-cache (src/code-cache.ts): the V8 code cache of the engine's modules, from a training run in a
// process of its own — a miss, a hit and a clean-up of a small image served here — that compiles every module
// of this workspace it loads and writes their caches and the manifest as it exits. Run by `pnpm build` after tsc.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const core = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workspace = path.resolve(core, '../..');
const cacheDir = path.join(core, 'dist/code-cache');
fs.rmSync(cacheDir, { recursive: true, force: true });

const image = Buffer.alloc(1 << 20, 7);
const sha256 = createHash('sha256').update(image).digest('hex');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': image.length, 'last-modified': new Date(0).toUTCString() });
  res.end(req.method === 'HEAD' ? undefined : image);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imagecache-core-code-cache-'));
const training = `
  const { ImageCache } = require(${JSON.stringify(path.join(core, 'dist/index.js'))});
  (async () => {
    const cache = new ImageCache({ masterDir: ${JSON.stringify(path.join(work, 'master'))} });
    const opts = { expectedFormat: 'raw', expectedChecksum: '${sha256}', expectedChecksumAlgo: 'sha256' };
    const href = 'http://127.0.0.1:${server.address().port}/disk.img';
    await cache.fetchImage(href, ${JSON.stringify(path.join(work, 'miss.img'))}, opts);
    await cache.fetchImage(href, ${JSON.stringify(path.join(work, 'hit.img'))}, opts);
    await cache.cleanUp();
  })().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
`;
// Without the builder's Node options (V8 flags would make a cache that plain runs refuse) or imagecache settings.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('IMAGECACHE_') && k !== 'NODE_OPTIONS'),
);
env.IMAGECACHE_CODE_CACHE_TRAIN = workspace;
try {
  const code = await new Promise((resolve) => {
    // Asynchronous: this process serves the image meanwhile.
    const child = spawn(process.execPath, ['-e', training], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`the training run failed (exit ${code})`);
} catch (err) {
  // The engine runs without a cache, only slower to start: not a reason to fail the build.
  fs.rmSync(cacheDir, { recursive: true, force: true });
  console.warn(`imagecache: no V8 code cache for the engine: ${err.message}`);
} finally {
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
}
