#!/usr/bin/env node
// Where does a cold miss spend its time? Decomposes the engine's download into its parts, each timed on the same
// image and server as bench/run.mjs (medians of --runs), with the CPU seconds of this process and of the server.
//
//   node bench/diag.mjs [--quick] [--runs N]
//
//   openssl dgst / curl -o /dev/null / curl -o FILE      the physical references
//   hashFile (StreamHasher)                              @imagecache/checksum's hashing alone, from the page cache
//   createHash, main thread                              node's sha256 without a worker
//   HttpSource.open -> discard                           the engine's HTTP layer alone
//   downloadTo, no hash -> FILE                          HTTP + BlockPipe + file writes (InlineHasher stubbed)
//   downloadTo, sha256 -> /dev/null                      HTTP + BlockPipe + hashing (no file write)
//   downloadTo, sha256 -> FILE                           what a cold miss does
//   reference: raw socket onread -> SAB blocks           what a receive path without per-chunk Buffers costs
//   ImageCache.fetchImage                                everything (locks, inspect, publish, link, evict)
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  GiB,
  MiB,
  ROOT,
  SCRATCH,
  cpuS,
  ensureImage,
  freshDir,
  log,
  median,
  now,
  requireDist,
  rmrf,
  round,
  runOk,
  startServer,
  waitQuiet,
} from './lib.mjs';
import { zeroCopyGet } from './zero-copy-get.mjs';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const RUNS = Number(argv[argv.indexOf('--runs') + 1] || 3) || 3;
const SIZE = QUICK ? 256 * MiB : GiB;
const ONLY = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : undefined;

const core = await requireDist('packages/core/dist');
const checksum = await requireDist('packages/checksum/dist');
const sources = await requireDist('packages/sources/dist');
const { downloadTo } = await requireDist('packages/core/dist/download.js');
// downloadTo builds `new InlineHasher(...)` through the index's live getter onto this module's export: swapping
// that export stubs the hashing for one measurement.
const hasherModule = await requireDist('packages/checksum/dist/inline-hasher.js');
const RealHasher = hasherModule.InlineHasher;
class NullHasher {
  constructor(algo) {
    this.algo = algo;
  }
  update() {
    return Promise.resolve();
  }
  digest() {
    return Promise.resolve('');
  }
  destroy() {}
}

const img = ensureImage(SIZE);
const server = await startServer();
const url = server.url(img.name);
fs.mkdirSync(SCRATCH, { recursive: true });
await runOk('cat', [img.file], { stdio: ['ignore', 'ignore', 'pipe'] });
checksum.prewarmHashWorkers?.();

const results = [];
async function measure(label, fn) {
  if (ONLY && !ONLY.some((o) => label.includes(o))) return;
  const times = [];
  const cpus = [];
  const srv = [];
  for (let r = 0; r < RUNS; r++) {
    const dir = freshDir('diag');
    await waitQuiet();
    const s0 = (await server.stats()).cpu;
    const c0 = process.cpuUsage();
    const t = now();
    const extra = await fn(dir);
    times.push(extra?.s ?? (now() - t) / 1000);
    cpus.push(extra?.cpu ?? cpuS(process.cpuUsage(c0)));
    const s1 = (await server.stats()).cpu;
    srv.push((s1.user + s1.system - s0.user - s0.system) / 1e6);
    rmrf(dir);
  }
  const s = median(times);
  const r = {
    label,
    s: round(s),
    GBps: round(SIZE / s / 1e9, 2),
    cpuS: round(median(cpus), 2),
    serverCpuS: round(median(srv), 2),
    all: times.map((x) => round(x)),
  };
  results.push(r);
  log(
    `${label}: ${r.s} s (${r.GBps} GB/s), cpu ${r.cpuS} s, server cpu ${r.serverCpuS} s  [${r.all.join(', ')}]`,
  );
}

const timedChild = async (cmd, args) => {
  const r = await runOk('/usr/bin/time', ['-f', '%e %U %S', cmd, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const [e, u, s] = r.err.trim().split('\n').pop().split(' ').map(Number);
  return { s: e, cpu: u + s };
};

const source = () => sources.resolveSource(url, {});
const dl = (file) =>
  downloadTo(sourceObj, file, {
    algos: ['sha256'],
    retries: 0,
    retryDelayMs: 0,
    logger: core.silentLogger,
  }).then((r) => ({ ...r, digest: r.digests.sha256 }));
let sourceObj;

try {
  await measure('openssl dgst -sha256 FILE', () => timedChild('openssl', ['dgst', '-sha256', img.file]));
  await measure('curl -o /dev/null', () => timedChild('curl', ['-sSf', '-o', '/dev/null', url]));
  await measure('curl -o FILE', (d) => timedChild('curl', ['-sSf', '-o', path.join(d, 'out'), url]));
  await measure('cat FILE > /dev/null (page cache read)', () => timedChild('cat', [img.file]));
  await measure('dd bs=4M FILE -> FILE (page cache copy, write)', (d) =>
    timedChild('dd', [`if=${img.file}`, `of=${path.join(d, 'out')}`, 'bs=4M', 'status=none']),
  );
  await measure('hashFile (StreamHasher, worker) FILE', async () => {
    const hex = await checksum.hashFile(img.file, 'sha256');
    if (hex !== img.sha) throw new Error('hashFile digest mismatch');
  });
  await measure('createHash sha256, main thread, 4 MiB reads', async () => {
    const fh = await fs.promises.open(img.file, 'r');
    const buf = Buffer.allocUnsafe(4 * MiB);
    const h = createHash('sha256');
    for (let pos = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (!bytesRead) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    await fh.close();
    if (h.digest('hex') !== img.sha) throw new Error('digest mismatch');
  });
  await measure('HttpSource.open -> discard', async () => {
    const src = await source();
    await src.show();
    const body = await src.open();
    let n = 0;
    let chunks = 0;
    for await (const c of body.stream) {
      n += c.length;
      chunks++;
    }
    if (n !== SIZE) throw new Error(`got ${n}`);
    log(`  mean chunk ${(n / chunks / 1024).toFixed(1)} KiB`);
  });
  await measure('downloadTo, hash stubbed -> FILE', async (d) => {
    sourceObj = await source();
    await sourceObj.show();
    hasherModule.InlineHasher = NullHasher;
    try {
      await dl(path.join(d, 'out'));
    } finally {
      hasherModule.InlineHasher = RealHasher;
    }
  });
  await measure('downloadTo, sha256 -> /dev/null', async () => {
    sourceObj = await source();
    await sourceObj.show();
    const r = await dl('/dev/null');
    if (r.digest !== img.sha) throw new Error('digest mismatch');
  });
  await measure('downloadTo, hash stubbed -> /dev/null', async () => {
    sourceObj = await source();
    await sourceObj.show();
    hasherModule.InlineHasher = NullHasher;
    try {
      await dl('/dev/null');
    } finally {
      hasherModule.InlineHasher = RealHasher;
    }
  });
  await measure('downloadTo, sha256 -> FILE', async (d) => {
    sourceObj = await source();
    await sourceObj.show();
    const r = await dl(path.join(d, 'out'));
    if (r.digest !== img.sha) throw new Error('digest mismatch');
  });
  await measure('reference: raw socket onread -> SAB blocks -> write+hash (zero-copy-get.mjs)', async (d) => {
    const r = await zeroCopyGet(url, path.join(d, 'out'), checksum);
    if (r.digest !== img.sha || r.size !== SIZE) throw new Error('zero-copy GET digest mismatch');
  });
  await measure('ImageCache.fetchImage (cold miss)', async (d) => {
    const cache = new core.ImageCache({ masterDir: path.join(d, 'master'), forceRaw: false });
    fs.mkdirSync(path.join(d, 'dest'));
    const r = await cache.fetchImage(url, path.join(d, 'dest', 'img'), {
      expectedChecksum: `sha256:${img.sha}`,
    });
    if (r.cacheHit) throw new Error('hit');
  });
} finally {
  server.stop();
  rmrf(SCRATCH);
}

console.log(
  `\ncold-miss decomposition, ${SIZE / MiB} MiB, medians of ${RUNS} (cpu = this process or the child; server = the upstream)\n`,
);
const w = Math.max(...results.map((r) => r.label.length));
console.log(
  `${'what'.padEnd(w)}  ${'s'.padStart(7)}  ${'GB/s'.padStart(5)}  ${'cpu s'.padStart(6)}  ${'srv s'.padStart(6)}  runs`,
);
for (const r of results) {
  console.log(
    `${r.label.padEnd(w)}  ${r.s.toFixed(3).padStart(7)}  ${r.GBps.toFixed(2).padStart(5)}  ${r.cpuS.toFixed(2).padStart(6)}  ${r.serverCpuS.toFixed(2).padStart(6)}  ${r.all.join(' ')}`,
  );
}
fs.writeFileSync(
  path.join(ROOT, 'bench', 'diag-results.json'),
  JSON.stringify({ size: SIZE, runs: RUNS, results }, null, 2) + '\n',
);
