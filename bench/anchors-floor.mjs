#!/usr/bin/env node
// The floor under imagecache in the anchors run (../shared/anchors): for one case, the least a Node program does to
// get the same result, timed as imagecache_case.mjs times the engine (same records, kind "node-floor"). Where the
// engine misses a target against Ironic, this says whether Node on this machine could meet it at all, and how much
// of the gap is the engine's own.
//
//   EXTRA_CASE_CMD="IMAGECACHE_ROOT=$PWD node ../shared/anchors/imagecache_case.mjs; node $PWD/bench/anchors-floor.mjs"
//
// What each case does, and nothing more (no HEAD, no lock, no inspection, no metadata, no space check):
//   cold_*        one GET on a raw socket (a reused 1 MiB read buffer), SHA-256 as bytes arrive, buffered writes
//                 to a work file, the digest compared, link work → master → destination; cold_qcow2_raw then runs
//                 a plain `qemu-img convert -O raw` (as Ironic does) and links its output instead.
//   concurrent8   cold_raw1g once, then 8 destinations linked to the master.
//   cleanup_*     Ironic's clean-up in Node: readdir, lstat each, unlink what is old or over size (kind
//                 "node-floor"); then the same with the spec's never-evict-a-linked-master guarantee, done as the
//                 engine does it: rename aside, lstat after, unlink, one master at a time without the engine's
//                 5 ms wait for links in flight (kind "node-floor-guarded").
// Env (set by run-anchors.sh): CASE ROUND IS_WARMUP URL IMAGES WORK RESULTS.
import { spawnSync, execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const { CASE, ROUND, IS_WARMUP, URL: BASE, IMAGES, WORK, RESULTS } = process.env;
const FILES = {
  cold_raw1g: 'raw-1G.img',
  cold_raw256m: 'raw-256M.img',
  cold_kernel8m: 'kernel-8M.bin',
  cold_qcow2_raw: 'qcow2-1G.qcow2',
  concurrent8: 'raw-1G.img',
};
const CLEAN_UP_FILES = 10_000;

const now = () => Number(process.hrtime.bigint()) / 1e9;
const rssKb = () => Math.round(process.memoryUsage.rss() / 1024);
const hwmKb = () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);

/** GET `url` into `file` on one connection, hashing as bytes arrive; resolves to the body's sha256 (hex). */
function download(url, file) {
  const u = new URL(url);
  const fd = fs.openSync(file, 'w');
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafeSlow(1 << 20);
  let head = Buffer.alloc(0);
  let inBody = false;
  let length = -1;
  let at = 0;
  return new Promise((resolve, reject) => {
    const body = (bytes) => {
      hash.update(bytes);
      fs.writeSync(fd, bytes, 0, bytes.length, at);
      at += bytes.length;
      if (at === length) {
        socket.destroy();
        fs.closeSync(fd);
        resolve(hash.digest('hex'));
      }
    };
    const socket = net.connect({
      host: u.hostname,
      port: Number(u.port),
      onread: {
        buffer,
        callback: (n, buf) => {
          let bytes = buf.subarray(0, n);
          if (!inBody) {
            head = Buffer.concat([head, bytes]);
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return;
            const text = head.subarray(0, end).toString('latin1');
            if (!/^HTTP\/1\.[01] 200 /.test(text)) return reject(new Error(text.split('\r\n')[0]));
            length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)[1]);
            inBody = true;
            bytes = head.subarray(end + 4);
          }
          if (bytes.length) body(bytes);
        },
      },
    });
    socket.on('error', reject);
    socket.on('end', () => at !== length && reject(new Error(`got ${at} of ${length} bytes`)));
    socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
  });
}

/** The whole miss of `name` into `dir`: work file, master, destination (qcow2: converted first). */
async function miss(name, dir, expected, convert) {
  const work = path.join(dir, 'work');
  const digest = await download(`${BASE}/${name}`, work);
  if (digest !== expected) throw new Error(`${name}: sha256 ${digest}, expected ${expected}`);
  let image = work;
  if (convert) {
    image = path.join(dir, 'work.raw');
    const r = spawnSync('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', work, image]);
    if (r.status !== 0) throw new Error(`qemu-img: ${r.stderr}`);
    fs.unlinkSync(work);
  }
  fs.linkSync(image, path.join(dir, 'master'));
  fs.unlinkSync(image);
  fs.linkSync(path.join(dir, 'master'), path.join(dir, 'dest'));
}

function makeFiles(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const payload = Buffer.alloc(4096, 7);
  for (let i = 0; i < CLEAN_UP_FILES; i++)
    fs.writeFileSync(path.join(dir, `f${String(i).padStart(5, '0')}`), payload);
}

/** Ironic's clean-up (or, `guarded`, the engine's way of removing): what is older than `ttlS`, then over `size`. */
function cleanUp(dir, { ttlS, size, guarded, aside }) {
  const files = [];
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    const st = fs.lstatSync(path.join(dir, e.name));
    total += st.blocks * 512;
    if (st.nlink === 1)
      files.push({ name: e.name, size: st.blocks * 512, used: Math.max(st.mtimeMs, st.atimeMs, st.ctimeMs) });
  }
  files.sort((a, b) => a.used - b.used);
  const threshold = Date.now() - ttlS * 1000;
  const remove = (f) => {
    const file = path.join(dir, f.name);
    if (!guarded) return fs.unlinkSync(file);
    const away = path.join(aside, `${f.name}.evicting`);
    fs.renameSync(file, away);
    if (fs.lstatSync(away).nlink > 1) fs.renameSync(away, file);
    else fs.unlinkSync(away);
  };
  let i = 0;
  for (; i < files.length && files[i].used < threshold; i++) {
    remove(files[i]);
    total -= files[i].size;
  }
  for (; i < files.length && total > size; i++) {
    remove(files[i]);
    total -= files[i].size;
  }
  return fs.readdirSync(dir).length;
}

const rssBeforeKb = rssKb();

function record(kind, fields, cpu0) {
  const cpu = process.cpuUsage(cpu0);
  const rec = {
    kind,
    mode: 'node',
    case: CASE,
    round: Number(ROUND),
    warmup: IS_WARMUP === '1',
    ts: Date.now() / 1000,
    ...fields,
    rss_before_kb: rssBeforeKb,
    cpu_user_s: cpu.user / 1e6,
    cpu_sys_s: cpu.system / 1e6,
    peak_rss_kb: Math.max(rssKb(), hwmKb()),
  };
  fs.appendFileSync(RESULTS, JSON.stringify(rec) + '\n');
}

const rundir = path.join(WORK, `floor-${CASE}-r${ROUND}-${process.pid}`);
const sums = Object.fromEntries(
  fs
    .readFileSync(path.join(IMAGES, 'SHA256SUMS'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(/\s+/))
    .map(([h, n]) => [n.replace(/^\*/, ''), h]),
);

try {
  if (CASE in FILES) {
    const name = FILES[CASE];
    fs.mkdirSync(rundir, { recursive: true });
    execSync('sync');
    const cpu0 = process.cpuUsage();
    const t0 = now();
    await miss(name, rundir, sums[name], CASE === 'cold_qcow2_raw');
    if (CASE === 'concurrent8') {
      for (let i = 0; i < 8; i++) fs.linkSync(path.join(rundir, 'master'), path.join(rundir, `d${i}`));
    }
    const wall = now() - t0;
    const st = fs.statSync(path.join(rundir, 'dest'));
    const ok =
      CASE === 'cold_qcow2_raw' ? st.size === 2 ** 31 : st.size === fs.statSync(path.join(IMAGES, name)).size;
    record('node-floor', { wall_s: wall, bytes: fs.statSync(path.join(IMAGES, name)).size, ok }, cpu0);
  } else if (CASE === 'cleanup_expired' || CASE === 'cleanup_oversize') {
    const expired = CASE === 'cleanup_expired';
    const opts = expired
      ? { ttlS: 1, size: Infinity }
      : { ttlS: 7 * 86400, size: (CLEAN_UP_FILES * 4096) / 2 };
    for (const guarded of [false, true]) {
      const dir = path.join(rundir, guarded ? 'guarded' : 'plain');
      const aside = path.join(rundir, `${guarded ? 'guarded' : 'plain'}-aside`);
      makeFiles(dir);
      fs.mkdirSync(aside);
      if (expired) await new Promise((r) => setTimeout(r, 1300));
      execSync('sync');
      const cpu0 = process.cpuUsage();
      const t0 = now();
      const left = cleanUp(dir, { ...opts, guarded, aside });
      const wall = now() - t0;
      const ok = left === (expired ? 0 : CLEAN_UP_FILES / 2);
      record(
        guarded ? 'node-floor-guarded' : 'node-floor',
        { wall_s: wall, bytes: 0, deleted: CLEAN_UP_FILES - left, ok },
        cpu0,
      );
    }
  }
} finally {
  fs.rmSync(rundir, { recursive: true, force: true });
}
