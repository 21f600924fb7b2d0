// Issue 3 cases (formats and conversion), run from bench/run.mjs:
//   8   inspectFormat() of a raw (sparse and full) and a qcow2: time per call and bytes read
//   9   cold miss of a qcow2 (SIZE of data, 2 x SIZE virtual) with forceRaw: true, against the same download
//       with sha256 (the engine's own cold miss of the same file, forceRaw: false) + `qemu-img convert` alone
//   10  qemu-img's peak memory during that conversion, against its cap (2 GiB address space)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  IMAGES,
  MiB,
  freshDir,
  log,
  median,
  now,
  pct,
  requireDist,
  rmrf,
  round,
  run,
  runOk,
  waitQuiet,
} from './lib.mjs';

const INSPECT_CALLS = 200;
const INSPECT_WARM = 20;
const INSPECT_TARGET_MS = 5;
const INSPECT_BYTES_TARGET = 4 * MiB; // "a few MiB at most" (the inspector's own hard bound, MAX_BYTES_READ)
const QEMU_CAP = 2 * 1024 * MiB; // the engine's default qemuImgMemoryCap

/**
 * A file derived from the random image, made once in IMAGES and reused (with its sha256 beside it, as
 * ensureImage keeps it). `make(tmp)` writes it to `tmp`.
 */
async function ensureDerived(name, make) {
  const file = path.join(IMAGES, name);
  const sumFile = file + '.sha256';
  if (!fs.existsSync(file)) {
    log(`making ${file}`);
    rmrf(sumFile);
    const tmp = file + '.tmp';
    rmrf(tmp);
    await make(tmp);
    fs.renameSync(tmp, file);
    const past = new Date(Date.now() - 3600_000); // Last-Modified in the past, as ensureImage does
    fs.utimesSync(file, past, past);
  }
  const st = fs.statSync(file);
  let sha;
  if (fs.existsSync(sumFile)) {
    const [hex, mtime] = fs.readFileSync(sumFile, 'utf8').trim().split(' ');
    if (Number(mtime) === st.mtimeMs) sha = hex;
  }
  if (!sha) {
    sha = (await runOk('openssl', ['dgst', '-sha256', '-r', file])).out.split(' ')[0];
    fs.writeFileSync(sumFile, `${sha} ${st.mtimeMs}\n`);
  }
  return { name, file, size: st.size, allocated: st.blocks * 512, sha };
}

/** A raw of 2 x img.size with img.size of data: 4 runs of data, each followed by a hole as long. */
function writeHalfFullRaw(img, out) {
  const piece = img.size / 4;
  const buf = Buffer.allocUnsafe(4 * MiB);
  const src = fs.openSync(img.file, 'r');
  const dst = fs.openSync(out, 'w');
  try {
    for (let k = 0; k < 4; k++) {
      for (let off = 0; off < piece; off += buf.length) {
        const n = fs.readSync(src, buf, 0, Math.min(buf.length, piece - off), k * piece + off);
        fs.writeSync(dst, buf, 0, n, k * 2 * piece + off);
      }
    }
    fs.ftruncateSync(dst, 2 * img.size);
  } finally {
    fs.closeSync(src);
    fs.closeSync(dst);
  }
}

/** The test images of these cases, made from the random image of the run (see README). */
export async function formatImages(img) {
  const mb = img.size / MiB;
  const sparse = await ensureDerived(`img-${mb}m-sparse.raw`, async (tmp) => {
    fs.writeFileSync(tmp, '');
    fs.truncateSync(tmp, img.size);
  });
  const qcowFull = await ensureDerived(`img-${mb}m.qcow2`, (tmp) =>
    runOk('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', img.file, tmp]),
  );
  const qcowHalf = await ensureDerived(`img-${2 * mb}m-virtual-${mb}m-data.qcow2`, async (tmp) => {
    const raw = tmp + '.raw';
    writeHalfFullRaw(img, raw);
    try {
      await runOk('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, tmp]);
    } finally {
      rmrf(raw);
    }
  });
  qcowHalf.virtualSize = 2 * img.size;
  return { sparse, qcowFull, qcowHalf };
}

/** Peak memory of a process from /proc/PID/status (KiB), or undefined once it is gone. */
function procMem(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { name: /^Name:\s+(\S+)/m.exec(s)?.[1], hwmKiB: get('VmHWM'), peakKiB: get('VmPeak') };
  } catch {
    return undefined;
  }
}

/** This process's children (every thread's), from /proc/self/task/TID/children. */
function childPids() {
  const pids = [];
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const c = fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      if (c) pids.push(...c.split(/\s+/).map(Number));
    }
  } catch {
    // no /proc: nothing to watch
  }
  return pids;
}

/**
 * Polls, every `everyMs`, VmHWM (peak RSS) and VmPeak (peak address space, what `prlimit --as` caps) of the
 * processes `pids()` returns whose name is `name`; keeps the highest seen. VmHWM only grows, so the last
 * sample before the process exits is within `everyMs` of its true peak.
 */
export function watchPeak(name, pids = childPids, everyMs = 10) {
  const best = { hwmKiB: 0, peakKiB: 0, samples: 0, pids: new Set() };
  const tick = () => {
    for (const pid of pids()) {
      const m = procMem(pid);
      if (!m || m.name !== name) continue;
      best.samples++;
      best.pids.add(pid);
      best.hwmKiB = Math.max(best.hwmKiB, m.hwmKiB);
      best.peakKiB = Math.max(best.peakKiB, m.peakKiB);
    }
  };
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { hwmKiB: best.hwmKiB, peakKiB: best.peakKiB, samples: best.samples, processes: best.pids.size };
    },
  };
}

/** Runs a command, watching its own peak memory (see watchPeak). */
function runWatched(cmd, args, name, opts = {}) {
  return new Promise((resolve, reject) => {
    const t = now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
    const w = watchPeak(name, () => [child.pid]);
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => {
      w.stop();
      reject(e);
    });
    child.on('exit', (code) => {
      const mem = w.stop();
      const s = (now() - t) / 1000;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(0, 500)}`));
      else resolve({ s, mem });
    });
  });
}

/** Entry point from run.mjs: ctx = { cases, runs, quick, sizeLabel, img, server, core, row, details }. */
export async function formatCases(ctx) {
  const { cases, img } = ctx;
  if (![8, 9, 10].some((c) => cases.has(c))) return;
  const imgs = await formatImages(img);
  for (const i of [imgs.sparse, imgs.qcowFull, imgs.qcowHalf]) {
    await runOk('cat', [i.file], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  if (cases.has(8)) await inspectCase(ctx, imgs);
  if (cases.has(9) || cases.has(10)) await forceRawCase(ctx, imgs);
}

/** Case 8: inspectFormat(file) of a 1 GiB raw (sparse, and full of random bytes) and a 1 GiB qcow2. */
async function inspectCase(ctx, imgs) {
  const { runs, row, details, img, sizeLabel } = ctx;
  const formats = await requireDist('packages/formats/dist');
  const files = [
    { label: `raw ${sizeLabel} sparse`, file: imgs.sparse.file, want: 'raw' },
    { label: `raw ${sizeLabel} random`, file: img.file, want: 'raw' },
    { label: `qcow2 ${sizeLabel} full`, file: imgs.qcowFull.file, want: 'qcow2' },
    {
      label: `qcow2 ${2 * (img.size / MiB)} MiB virt., ${sizeLabel} data`,
      file: imgs.qcowHalf.file,
      want: 'qcow2',
    },
  ];
  // What any inspector pays at least: open, stat, one 64 KiB read at offset 0, close (async, as inspectFormat).
  const bare = async (file) => {
    const fh = await fs.promises.open(file, 'r');
    try {
      await fh.stat();
      await fh.read(Buffer.allocUnsafe(65536), 0, 65536, 0);
    } finally {
      await fh.close();
    }
  };
  const timeCalls = async (fn) => {
    for (let i = 0; i < INSPECT_WARM; i++) await fn();
    const xs = [];
    for (let i = 0; i < INSPECT_CALLS; i++) {
      const t = now();
      await fn();
      xs.push(now() - t);
    }
    return { p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) };
  };
  details.inspect = { calls: INSPECT_CALLS, files: {} };
  for (const f of files) {
    const report = await formats.inspectFormat(f.file);
    if (report.format !== f.want)
      throw new Error(`inspectFormat(${f.file}) says ${report.format}, not ${f.want}`);
    const per = [];
    const refs = [];
    for (let r = 0; r < runs; r++) {
      await waitQuiet({ sync: false });
      per.push(await timeCalls(() => formats.inspectFormat(f.file)));
      refs.push(await timeCalls(() => bare(f.file)));
    }
    const p50 = median(per.map((p) => p.p50));
    const p99 = median(per.map((p) => p.p99));
    const ref = median(refs.map((p) => p.p50));
    const bytesRead = report.details?.bytesRead;
    details.inspect.files[f.label] = {
      file: path.basename(f.file),
      format: report.format,
      virtualSize: report.virtualSize,
      safe: report.safe,
      bytesRead,
      perRun: per.map((p) => ({ p50: round(p.p50, 4), p99: round(p.p99, 4), max: round(p.max, 4) })),
      bareOpenReadCloseP50: refs.map((p) => round(p.p50, 4)),
    };
    log(`inspect ${f.label}: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, read ${bytesRead} bytes`);
    const pass = p50 <= INSPECT_TARGET_MS && bytesRead <= INSPECT_BYTES_TARGET;
    row({
      case: `8. inspectFormat ${f.label} (p50 of ${INSPECT_CALLS}; bytes read)`,
      measured: { p50, p99, bytesRead },
      limit: ref,
      ratio: p50 / ref,
      target: INSPECT_TARGET_MS,
      pass,
      measuredText: `${p50.toFixed(3)} ms (p99 ${p99.toFixed(3)}); ${(bytesRead / 1024).toFixed(0)} KiB`,
      limitText: `${ref.toFixed(3)} ms (open+64K read+close)`,
      ratioText: `${(p50 / ref).toFixed(2)}x`,
      targetText: `<= ${INSPECT_TARGET_MS} ms; <= ${INSPECT_BYTES_TARGET / MiB} MiB`,
    });
  }
}

/** Cases 9 and 10: cold miss of the half-full qcow2 with forceRaw, and qemu-img's peak memory meanwhile. */
async function forceRawCase(ctx, imgs) {
  const { runs, row, details, server, core, cases, img } = ctx;
  const q = imgs.qcowHalf;
  const url = server.url(q.name);
  const opts = { expectedChecksum: `sha256:${q.sha}` };
  const engine = [];
  const download = [];
  const convert = [];
  const openssl = [];
  const curl = [];
  const runsOut = [];
  const engineMem = [];
  const convertMem = [];
  for (let r = 0; r < runs; r++) {
    // The engine with forceRaw, qemu-img's memory watched from here (it is our child, through prlimit's exec).
    let dir = freshDir(`forceraw-${r}`);
    fs.mkdirSync(path.join(dir, 'dest'));
    let dest = path.join(dir, 'dest', 'image');
    await waitQuiet();
    const w = watchPeak('qemu-img');
    // Where the time goes, from the stage events (each stage until the next one starts).
    const marks = [];
    const onProgress = (p) => {
      if (marks.at(-1)?.stage !== p.stage) marks.push({ stage: p.stage, t: now() });
    };
    let t = now();
    const res = await new core.ImageCache({ masterDir: path.join(dir, 'master'), forceRaw: true }).fetchImage(
      url,
      dest,
      { ...opts, onProgress },
    );
    const end = now();
    const e = (end - t) / 1000;
    const mem = w.stop();
    const stagesMs = { beforeFirstStage: round((marks[0]?.t ?? end) - t, 1) };
    marks.forEach((m, i) => (stagesMs[m.stage] = round((marks[i + 1]?.t ?? end) - m.t, 1)));
    const st = fs.statSync(dest);
    if (res.cacheHit || !res.converted || res.format !== 'raw' || st.size !== q.virtualSize) {
      throw new Error(`forceRaw cold miss went wrong: ${JSON.stringify({ ...res, size: st.size })}`);
    }
    if (mem.samples === 0) log('qemu-img was never seen running (too quick for the 10 ms poll?)');
    engine.push(e);
    engineMem.push(mem);
    const engineDest = dest;
    const engineDurations = Object.fromEntries(
      Object.entries(res.durations).map(([k, v]) => [k, round(v, 1)]),
    );
    const destAllocated = st.blocks * 512;

    // The same download with sha256: the engine's cold miss of the same file, no conversion (case 2's measurement).
    const dir2 = freshDir(`forceraw-dl-${r}`);
    fs.mkdirSync(path.join(dir2, 'dest'));
    await waitQuiet();
    t = now();
    const res2 = await new core.ImageCache({
      masterDir: path.join(dir2, 'master'),
      forceRaw: false,
    }).fetchImage(url, path.join(dir2, 'dest', 'image'), opts);
    download.push((now() - t) / 1000);
    if (res2.cacheHit || res2.converted || res2.format !== 'qcow2') {
      throw new Error(`plain cold miss of the qcow2 went wrong: ${JSON.stringify(res2)}`);
    }
    rmrf(dir2);

    // Physical references: openssl dgst of the file, curl -o of the URL.
    await waitQuiet();
    openssl.push((await runOk('openssl', ['dgst', '-sha256', q.file])).s);
    const cd = freshDir('forceraw-curl');
    await waitQuiet();
    curl.push((await runOk('curl', ['-sSf', '-o', path.join(cd, 'out.qcow2'), url])).s);
    rmrf(cd);

    // qemu-img convert alone, on the same file, into the same filesystem.
    const qd = freshDir('forceraw-qemu');
    const out = path.join(qd, 'out.raw');
    await waitQuiet();
    const qr = await runWatched('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', q.file, out], 'qemu-img');
    convert.push(qr.s);
    convertMem.push(qr.mem);
    if (r === runs - 1) {
      // Same bytes as qemu-img's own output (untimed).
      const cmp = await run('cmp', ['-s', engineDest, out]);
      details.forceRawSameBytes = cmp.code === 0;
      if (cmp.code !== 0) log("the engine's converted image differs from `qemu-img convert`'s!");
    }
    rmrf(qd);
    rmrf(dir);
    runsOut.push({
      engine: round(e),
      download: round(download.at(-1)),
      convert: round(qr.s),
      openssl: round(openssl.at(-1)),
      curl: round(curl.at(-1)),
      engineStagesMs: stagesMs,
      engineDurationsMs: engineDurations,
      destAllocatedMiB: round(destAllocated / MiB, 1),
      qemuImgInEngine: {
        hwmMiB: round(mem.hwmKiB / 1024, 1),
        vmPeakMiB: round(mem.peakKiB / 1024, 1),
        samples: mem.samples,
      },
      qemuImgAlone: { hwmMiB: round(qr.mem.hwmKiB / 1024, 1), vmPeakMiB: round(qr.mem.peakKiB / 1024, 1) },
    });
    log(
      `forceRaw run ${r + 1}: engine ${e.toFixed(3)} s = ${JSON.stringify(stagesMs)}; download+sha ${download.at(-1).toFixed(3)} s, qemu-img ${qr.s.toFixed(3)} s, openssl ${openssl.at(-1).toFixed(3)} s`,
    );
  }
  // The exact peak RSS of the engine's qemu-img command line (prlimit exec's qemu-img), from wait4() via time -v.
  let exact;
  if (cases.has(10) && fs.existsSync('/usr/bin/time')) {
    const qd = freshDir('forceraw-time');
    const r = await run(
      '/usr/bin/time',
      [
        '-v',
        'prlimit',
        `--as=${QEMU_CAP}`,
        '--',
        'qemu-img',
        'convert',
        '-q',
        '-f',
        'qcow2',
        '-O',
        'raw',
        q.file,
        path.join(qd, 'o'),
      ],
      { env: { ...process.env, MALLOC_ARENA_MAX: '3', LC_ALL: 'C' } },
    );
    const kib = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.err)?.[1]);
    exact = r.code === 0 && kib ? kib : undefined;
    rmrf(qd);
  }

  const m = median(engine);
  // Each run's own ratio (same minute, same disk state): steadier than the ratio of medians on a shared disk.
  const paired = median(engine.map((x, i) => x / (download[i] + convert[i])));
  const d = median(download);
  const c = median(convert);
  const o = median(openssl);
  details.forceRaw = {
    image: q.name,
    fileBytes: q.size,
    allocatedBytes: q.allocated,
    virtualBytes: q.virtualSize,
    downloadWithSha256:
      "the engine's own cold miss of the same qcow2 (forceRaw: false), as case 2 measures it",
    engine,
    download,
    convert,
    openssl,
    curl,
    runs: runsOut,
    qemuImgExactMaxRssKiB: exact,
    pairedRatioMedian: round(paired),
  };
  const s3 = (s) => `${s.toFixed(3)} s`;
  const gib = (x) => `${(2 * x) / (1024 * MiB)}`;
  if (cases.has(9)) {
    row({
      case: `9. cold miss qcow2 ${gib(img.size)} GiB virt. forceRaw vs download+sha256 + qemu-img`,
      measured: m,
      limit: d + c,
      ratio: m / (d + c),
      target: 1.1,
      pass: m / (d + c) <= 1.1,
      measuredText: s3(m),
      limitText: `${s3(d + c)} (${d.toFixed(3)} + ${c.toFixed(3)})`,
      ratioText: `${(m / (d + c)).toFixed(2)}x (paired ${paired.toFixed(2)}x)`,
      targetText: '<= 1.10x',
    });
    row({
      case: '9. same vs openssl dgst + qemu-img (physical)',
      measured: m,
      limit: o + c,
      ratio: m / (o + c),
      measuredText: s3(m),
      limitText: `${s3(o + c)} (${o.toFixed(3)} + ${c.toFixed(3)})`,
      ratioText: `${(m / (o + c)).toFixed(2)}x`,
      targetText: '(report)',
    });
  }
  if (cases.has(10)) {
    const hwm = Math.max(...engineMem.map((x) => x.hwmKiB)) * 1024;
    const peak = Math.max(...engineMem.map((x) => x.peakKiB)) * 1024;
    const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;
    row({
      case: '10. qemu-img peak RSS in the forceRaw miss (VmHWM, max of runs)',
      measured: hwm,
      limit: QEMU_CAP,
      ratio: hwm / QEMU_CAP,
      target: QEMU_CAP,
      pass: hwm > 0 && hwm < QEMU_CAP,
      measuredText: `${mib(hwm)}${exact ? ` (time -v: ${mib(exact * 1024)})` : ''}`,
      limitText: `${mib(QEMU_CAP)} (cap)`,
      ratioText: `${(hwm / QEMU_CAP).toFixed(3)}x`,
      targetText: '< cap',
    });
    row({
      case: '10. qemu-img peak address space (VmPeak, what --as caps)',
      measured: peak,
      limit: QEMU_CAP,
      ratio: peak / QEMU_CAP,
      measuredText: mib(peak),
      limitText: `${mib(QEMU_CAP)} (cap)`,
      ratioText: `${(peak / QEMU_CAP).toFixed(3)}x`,
      targetText: '(report)',
    });
  }
}
