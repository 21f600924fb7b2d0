#!/usr/bin/env node
// Issue 12: HOSTS hosts of one fleet (a worker process each, its own master folder and peer port) fetching one
// uncached image at once, against the same hosts without peers and against one cold miss alone. Measures origin
// GETs and bytes (counted by the origin server of this script) and wall time (first request to last answer).
//
//   node bench/fleet.mjs [--size 1GiB] [--hosts 4] [--images 4] [--runs 1]
//
// --images N adds a scenario where every host asks for N images at once (the same bytes under N hrefs: N
// identities): each should leave the origin once.
//
// Needs `pnpm build` first (it runs bin/imagecache and loads packages/queue/dist), a Redis at 127.0.0.1:6379 (or
// IMAGECACHE_BENCH_REDIS; keys under a prefix of its own, deleted at the end), openssl for the image. Not run in
// CI: it wants a quiet machine. Prints a table and writes bench/fleet-results.json.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import {
  BENCH_DIR,
  CLI,
  ensureImage,
  freshDir,
  GiB,
  log,
  MiB,
  now,
  requireDist,
  ROOT,
  round,
  table,
} from './lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const parseSize = (s) => {
  const m = /^(\d+)(MiB|GiB)?$/.exec(s);
  if (!m) throw new Error(`--size takes N, NMiB or NGiB, got ${s}`);
  return Number(m[1]) * (m[2] === 'GiB' ? GiB : m[2] === 'MiB' ? MiB : 1);
};
const SIZE = parseSize(opt('--size', '1GiB'));
const HOSTS = Number(opt('--hosts', 4));
const RUNS = Number(opt('--runs', 1));
const IMAGES = Number(opt('--images', 4));
const REDIS_URL = process.env.IMAGECACHE_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const SECRET = randomBytes(24).toString('hex');

/**
 * The origin, in a process of its own (it must not take CPU from this process's clock nor share an event loop):
 * serves one file under any `/image-<k>.bin` (Range honoured), counting GETs (per path) and bytes; `/_counts` and
 * `/_reset` read and zero them.
 */
const ORIGIN = `
  const fs = require('node:fs');
  const http = require('node:http');
  const file = process.argv[1];
  const st = fs.statSync(file);
  let counts = { gets: 0, bytes: 0, paths: {} };
  const server = http.createServer((req, res) => {
    if (req.url === '/_counts') return void res.end(JSON.stringify(counts));
    if (req.url === '/_reset') return void ((counts = { gets: 0, bytes: 0, paths: {} }), res.end('{}'));
    const headers = {
      'content-length': String(st.size),
      'last-modified': st.mtime.toUTCString(),
      etag: '"' + st.ino + '-' + st.mtimeMs + '"',
      'accept-ranges': 'bytes',
    };
    if (req.method === 'HEAD') return void res.writeHead(200, headers).end();
    counts.gets++;
    counts.paths[req.url] = (counts.paths[req.url] ?? 0) + 1;
    const range = /^bytes=(\\d+)-$/.exec(req.headers.range ?? '');
    const start = range && req.headers['if-range'] === headers.etag ? Number(range[1]) : 0;
    if (start > 0) {
      headers['content-length'] = String(st.size - start);
      headers['content-range'] = 'bytes ' + start + '-' + (st.size - 1) + '/' + st.size;
    }
    res.writeHead(start > 0 ? 206 : 200, headers);
    const stream = fs.createReadStream(file, { start, highWaterMark: 4 << 20 });
    stream.on('data', (c) => (counts.bytes += c.length));
    stream.pipe(res);
  });
  server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();`;

async function startOrigin(file) {
  const child = spawn(process.execPath, ['-e', ORIGIN, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec((buf += d));
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (c) => reject(new Error(`origin exited ${c}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    url: (k = 0) => `${base}/image-${k}.bin`,
    counts: async () => (await fetch(`${base}/_counts`)).json(),
    reset: () => fetch(`${base}/_reset`),
    close: async () => void child.stdin.end(),
  };
}

/** One worker process of `host` (with a peer service when `peers`), ready once it serves. */
async function startWorker(dir, host, prefix, peers) {
  const config = path.join(dir, `${host}.json`);
  fs.writeFileSync(
    config,
    JSON.stringify({
      host,
      caches: [{ name: 'bench', masterDir: path.join(dir, host, 'master'), forceRaw: false }],
      redis: { url: REDIS_URL, prefix },
      destinations: { allowedRoots: [path.join(dir, host)] },
      sweepInterval: 0,
      logLevel: 'warn',
      ...(peers && { peers: { enabled: true, secret: SECRET } }),
    }),
  );
  fs.mkdirSync(path.join(dir, host, 'dest'), { recursive: true });
  const child = spawn(CLI, ['worker', '--config', config, ...(peers ? ['--peer-port', '0'] : [])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  for (let i = 0; i < 600 && !err.includes('serving'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!err.includes('serving')) throw new Error(`worker ${host} did not start:\n${err}`);
  return { dest: path.join(dir, host, 'dest', 'disk'), stop: () => child.kill('SIGKILL') };
}

/** `hosts` hosts fetch the image at once; wall from the first request to the last answer. */
async function scenario(label, hosts, peers, origin, sha, queue, images = 1) {
  const prefix = `{imagecache-bench-fleet-${randomBytes(4).toString('hex')}}`;
  const dir = freshDir(`fleet-${label}`);
  const names = Array.from({ length: hosts }, (_, i) => `h${i + 1}`);
  const workers = await Promise.all(names.map((h) => startWorker(dir, h, prefix, peers)));
  const client = new queue.ImageCacheClient({
    redis: { mode: 'standalone', url: REDIS_URL, prefix },
    pollIntervalMs: 500,
  });
  await origin.reset();
  try {
    const t = now();
    const results = await Promise.all(
      names.flatMap((host, i) =>
        Array.from({ length: images }, (_, k) =>
          client.fetchImage({
            host,
            cache: 'bench',
            href: origin.url(k),
            dest: `${workers[i].dest}-${k}`,
            expectedChecksum: `sha256:${sha}`,
          }),
        ),
      ),
    );
    const wallS = (now() - t) / 1000;
    const counts = await origin.counts();
    return {
      scenario: label,
      hosts,
      images,
      peers,
      wallS: round(wallS),
      originGets: counts.gets,
      originGiB: round(counts.bytes / GiB, 4),
      fromPeers: results.filter((r) => r.peer !== undefined).length,
      maxGetsPerImage: Math.max(...Object.values(counts.paths)),
    };
  } finally {
    await client.close();
    for (const w of workers) w.stop();
    const Redis = createRequire(path.join(ROOT, 'packages/queue/package.json'))('ioredis');
    const redis = new Redis(REDIS_URL);
    const stale = await redis.keys(`${prefix}:*`);
    if (stale.length) await redis.del(...stale);
    redis.disconnect();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const queue = await requireDist('packages/queue/dist');
  const img = ensureImage(SIZE);
  const origin = await startOrigin(img.file);
  const rows = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      rows.push(await scenario('one cold miss', 1, false, origin, img.sha, queue));
      rows.push(await scenario('fleet, peers on', HOSTS, true, origin, img.sha, queue));
      rows.push(await scenario('fleet, peers off', HOSTS, false, origin, img.sha, queue));
      if (IMAGES > 1)
        rows.push(await scenario(`fleet, ${IMAGES} images`, HOSTS, true, origin, img.sha, queue, IMAGES));
    }
  } finally {
    await origin.close();
  }
  const cold = rows.filter((r) => r.scenario === 'one cold miss').map((r) => r.wallS);
  const coldS = cold.reduce((a, b) => a + b, 0) / cold.length;
  for (const r of rows) r.vsColdMiss = round(r.wallS / coldS, 2);
  log(`image ${round(SIZE / MiB, 1)} MiB, ${HOSTS} hosts`);
  console.log(
    table(
      rows.map((r) => ({
        case: `${r.scenario} (${r.hosts} host${r.hosts > 1 ? 's' : ''})`,
        measuredText: `wall ${r.wallS} s (${r.vsColdMiss}× one cold miss), origin GETs ${r.originGets} (at most ${r.maxGetsPerImage} per image), origin ${r.originGiB} GiB, from peers ${r.fromPeers}`,
      })),
    ),
  );
  fs.writeFileSync(
    path.join(BENCH_DIR, 'fleet-results.json'),
    JSON.stringify({ size: SIZE, hosts: HOSTS, runs: RUNS, rows }, null, 2) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
