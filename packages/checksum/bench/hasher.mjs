#!/usr/bin/env node
// Micro-benchmark: StreamHasher (sha256, via hashFile: 4 MiB SharedArrayBuffer blocks, 4 in flight, reads
// overlapped with hashing on the worker thread) against `openssl dgst -sha256` on the same file.
//
//   cd packages/checksum && npx tsc -p tsconfig.build.json && node bench/hasher.mjs
//
// Env: BENCH_FILE (default $TMPDIR/imagecache-hasher-bench.bin), BENCH_SIZE_MIB (default 1024), BENCH_RUNS (5).
// The file is created with random bytes when missing or of another size, and stays in the page cache, so both
// sides measure hashing + reading from memory. Prints the medians and the ratio (target ≤ 1.05).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist', 'index.js');
if (!existsSync(dist)) {
  console.error(`missing ${dist}: run \`npx tsc -p tsconfig.build.json\` in packages/checksum first`);
  process.exit(2);
}
const { hashFile, prewarmHashWorkers } = createRequire(import.meta.url)(dist);

const sizeMiB = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 5);
const file = process.env.BENCH_FILE ?? join(tmpdir(), 'imagecache-hasher-bench.bin');
const size = sizeMiB * 1024 * 1024;

if (!existsSync(file) || statSync(file).size !== size) {
  process.stdout.write(`writing ${sizeMiB} MiB of random bytes to ${file}… `);
  const fd = openSync(file, 'w');
  const piece = 16 * 1024 * 1024;
  for (let done = 0; done < size; done += piece) writeSync(fd, randomBytes(Math.min(piece, size - done)));
  closeSync(fd);
  console.log('done');
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function openssl() {
  const t = now();
  const r = spawnSync('openssl', ['dgst', '-sha256', '-r', file], { encoding: 'utf8' });
  const s = now() - t;
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { s, hex: r.stdout.split(' ')[0] };
}
async function ours() {
  const t = now();
  const hex = await hashFile(file, 'sha256');
  return { s: now() - t, hex };
}

// First use in this process: includes starting the hashing thread (~25 ms).
openssl(); // warm the page cache
const first = await ours();
await prewarmHashWorkers();

const a = [];
const b = [];
let expected;
for (let i = 0; i < runs; i++) {
  const o = openssl();
  const h = await ours();
  expected ??= o.hex;
  if (o.hex !== expected || h.hex !== expected)
    throw new Error(`digest mismatch: openssl ${o.hex}, ours ${h.hex}`);
  a.push(o.s);
  b.push(h.s);
}
const gbs = (s) => (size / s / 1e9).toFixed(2);
const mo = median(a);
const mh = median(b);
console.log(`file ${file}, ${sizeMiB} MiB, ${runs} runs each, medians:`);
console.log(`  openssl dgst -sha256     ${mo.toFixed(3)} s  ${gbs(mo)} GB/s`);
console.log(`  StreamHasher (hashFile)  ${mh.toFixed(3)} s  ${gbs(mh)} GB/s`);
console.log(`  first use (thread start) ${first.s.toFixed(3)} s  ratio ${(first.s / mo).toFixed(3)}`);
console.log(`ratio StreamHasher / openssl = ${(mh / mo).toFixed(3)} (target ≤ 1.05)`);
