#!/usr/bin/env node
// imagecache benchmark suite: the engine against the physical limits measured in the same run on the same files.
//
//   node bench/run.mjs [--quick] [--runs N] [--hits N] [--cases 2,3,...] [--burst N] [--in-flight N] [--prof]
//
// Needs `TURBO_TELEMETRY_DISABLED=1 pnpm build` first (it loads packages/*/dist and bin/imagecache), plus
// openssl, curl and rm; cases 8-10 qemu-img and prlimit; cases 11-13 a Redis at 127.0.0.1:6379 (or
// IMAGECACHE_BENCH_REDIS). Prints one table and writes bench/results.json. See bench/README.md.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BENCH_DIR,
  CLI,
  GiB,
  MiB,
  ROOT,
  SCRATCH,
  cpuS,
  ensureImage,
  freshDir,
  log,
  mean,
  median,
  now,
  pct,
  quietLog,
  requireDist,
  requireUndici,
  rmrf,
  round,
  run,
  runOk,
  sleep,
  startServer,
  table,
  waitQuiet,
} from './lib.mjs';
import { distributedCases } from './distributed.mjs';
import { formatCases } from './formats.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const QUICK = flag('--quick');
const RUNS = Number(opt('--runs', 3));
const HITS = Number(opt('--hits', 2000));
const CASES = new Set(String(opt('--cases', '2,3,4,5,6,7,8,9,10,11,12,13')).split(',').map(Number));
const BURST = Number(opt('--burst', 5000)); // case 12: warm hits per throughput run
const IN_FLIGHT = Number(opt('--in-flight', 64)); // case 12: calls in flight at once
const PROF = flag('--prof'); // cases 11-13: workers run with --cpu-prof, summarised in results.json
const SIZE = QUICK ? 256 * MiB : GiB;
const BIG = 4 * GiB;
const FILES = 10_000;
const FILE_SIZE = 4096;
const CONCURRENT = 8;
const sizeLabel = QUICK ? '256 MiB' : '1 GiB';

const rows = [];
const details = {};
const row = (r) => {
  rows.push(r);
  log(
    `${r.case}: ${r.measuredText} (limit ${r.limitText ?? '-'}, ratio ${r.ratioText ?? '-'}, target ${r.targetText ?? '-'})`,
  );
};
const s3 = (s) => `${s.toFixed(3)} s`;
const x2 = (r) => `${r.toFixed(2)}x`;

async function main() {
  fs.mkdirSync(SCRATCH, { recursive: true });
  const core = await requireDist('packages/core/dist');
  const img = ensureImage(SIZE);
  const big = QUICK || !CASES.has(7) ? undefined : ensureImage(BIG);
  const server = await startServer();
  log(`server pid ${server.pid} at ${server.base}; ${sizeLabel} image ${img.file}`);
  const started = new Date();
  let hitMaster;
  try {
    // Pull the images into the page cache once, so every side reads them from memory.
    for (const i of [img, big]) if (i) await runOk('cat', [i.file], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (CASES.has(2) || CASES.has(3)) hitMaster = await coldMiss(core, server, img);
    if (CASES.has(3)) await warmHits(core, server, img, hitMaster);
    if (hitMaster) rmrf(hitMaster.dir);
    if (CASES.has(4)) await concurrentCli(server, img);
    if (CASES.has(5)) await cleanUpExpired(core);
    if (CASES.has(6)) await cleanUpOverSize(core);
    if (CASES.has(7)) await peakRss(server, img, big);
    const ctx = { cases: CASES, runs: RUNS, quick: QUICK, sizeLabel, img, server, core, row, details };
    await formatCases(ctx);
    await distributedCases({ ...ctx, hits: HITS, burst: BURST, inFlight: IN_FLIGHT, prof: PROF });
  } finally {
    server.stop();
    rmrf(SCRATCH);
  }

  const out = {
    started: started.toISOString(),
    quick: QUICK,
    runs: RUNS,
    imageBytes: SIZE,
    host: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memGiB: round(os.totalmem() / GiB, 1),
      node: process.version,
    },
    engine: gitState(),
    rows,
    details,
    quiet: { ...quietLog, waitedMs: Math.round(quietLog.waitedMs), minIdle: round(quietLog.minIdle, 2) },
  };
  fs.writeFileSync(path.join(BENCH_DIR, 'results.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(
    `\nimagecache bench (${QUICK ? 'quick, ' : ''}${RUNS} runs, medians) ${started.toISOString()}\n`,
  );
  console.log(table(rows));
  console.log(
    `\nquiet waits: ${quietLog.waits}, ${quietLog.noisy} gave up (machine busy), least idle ${(quietLog.minIdle * 100).toFixed(0)}%`,
  );
  console.log(`\nwritten to ${path.relative(process.cwd(), path.join(BENCH_DIR, 'results.json'))}`);
}

/** The commit the compiled packages were (presumably) built from, and whether the tree had changes. */
function gitState() {
  const git = (...args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trim();
  return {
    commit: git('rev-parse', '--short', 'HEAD'),
    dirty: Boolean(git('status', '--porcelain', '--', 'packages', 'apps')),
  };
}

/** Case 2: cold miss with sha256, in-process, against openssl dgst and curl -o on the same file. */
async function coldMiss(core, server, img) {
  const url = server.url(img.name);
  const openssl = [];
  const curl = [];
  const engine = [];
  const runs = [];
  let keep;
  for (let r = 0; r < RUNS; r++) {
    await waitQuiet();
    openssl.push((await runOk('openssl', ['dgst', '-sha256', img.file])).s);

    const cd = freshDir('curl');
    await waitQuiet();
    curl.push((await runOk('curl', ['-sSf', '-o', path.join(cd, 'out.bin'), url])).s);
    rmrf(cd);

    const dir = freshDir(`cold-${r}`);
    const masterDir = path.join(dir, 'master');
    fs.mkdirSync(path.join(dir, 'dest'));
    const dest = path.join(dir, 'dest', 'image');
    const cache = new core.ImageCache({ masterDir, forceRaw: false });
    await waitQuiet();
    const srv0 = (await server.stats()).cpu;
    const cpu0 = process.cpuUsage();
    const t = now();
    const res = await cache.fetchImage(url, dest, { expectedChecksum: `sha256:${img.sha}` });
    const s = (now() - t) / 1000;
    const cpu = cpuS(process.cpuUsage(cpu0));
    const srv1 = (await server.stats()).cpu;
    if (res.cacheHit || res.checksum?.value !== img.sha || fs.statSync(dest).size !== img.size) {
      throw new Error(`cold miss went wrong: ${JSON.stringify(res)}`);
    }
    engine.push(s);
    runs.push({
      s: round(s),
      openssl: round(openssl.at(-1)),
      curl: round(curl.at(-1)),
      engineCpuS: round(cpu),
      serverCpuS: round((srv1.user + srv1.system - srv0.user - srv0.system) / 1e6),
      durationsMs: Object.fromEntries(Object.entries(res.durations).map(([k, v]) => [k, round(v, 1)])),
    });
    log(
      `cold miss run ${r + 1}: engine ${s.toFixed(3)} s, openssl ${openssl.at(-1).toFixed(3)} s, curl ${curl.at(-1).toFixed(3)} s`,
    );
    if (r === RUNS - 1) keep = { dir, masterDir, url, img };
    else rmrf(dir);
  }
  if (CASES.has(2)) {
    const m = median(engine);
    const o = median(openssl);
    const c = median(curl);
    details.coldMiss = { engine, openssl, curl, runs, gbPerS: round(img.size / m / 1e9) };
    row({
      case: `2. cold miss ${sizeLabel} +sha256 vs openssl dgst`,
      measured: m,
      limit: o,
      ratio: m / o,
      target: 1.15,
      pass: m / o <= 1.15,
      measuredText: s3(m),
      limitText: s3(o),
      ratioText: x2(m / o),
      targetText: '<= 1.15x',
    });
    row({
      case: `2. cold miss ${sizeLabel} +sha256 vs curl -o`,
      measured: m,
      limit: c,
      ratio: m / c,
      measuredText: s3(m),
      limitText: s3(c),
      ratioText: x2(m / c),
      targetText: '(report)',
    });
  }
  return keep;
}

/** Case 3: warm hits to new destinations, sequential, in-process; a bare undici HEAD for reference. */
async function warmHits(core, server, img, master) {
  const { url } = master;
  const cache = new core.ImageCache({ masterDir: master.masterDir, forceRaw: false });
  const opts = { expectedChecksum: `sha256:${img.sha}` };
  const destDir = path.join(master.dir, 'hits');
  const warm = Math.min(200, HITS);
  const perRun = [];
  const all = [];
  const stages = { resolve: [], link: [] };
  for (let r = 0; r < RUNS; r++) {
    rmrf(destDir);
    fs.mkdirSync(destDir);
    await waitQuiet({ sync: false });
    for (let i = 0; i < warm; i++) await cache.fetchImage(url, path.join(destDir, `w${i}`), opts);
    const times = new Float64Array(HITS);
    for (let i = 0; i < HITS; i++) {
      const t = now();
      const res = await cache.fetchImage(url, path.join(destDir, `h${i}`), opts);
      times[i] = now() - t;
      if (!res.cacheHit) throw new Error('warm hit was a miss');
      stages.resolve.push(res.durations.resolve ?? 0);
      stages.link.push(res.durations.link ?? 0);
    }
    const xs = [...times];
    all.push(...xs);
    perRun.push({ mean: mean(xs), p50: pct(xs, 50), p99: pct(xs, 99) });
  }
  rmrf(destDir);

  const { Agent, request } = requireUndici();
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  const head = async () => {
    const res = await request(url, { method: 'HEAD', dispatcher: agent, reset: false });
    await res.body.dump();
  };
  const heads = [];
  for (let r = 0; r < RUNS; r++) {
    await waitQuiet({ sync: false });
    for (let i = 0; i < warm; i++) await head();
    const xs = [];
    for (let i = 0; i < HITS; i++) {
      const t = now();
      await head();
      xs.push(now() - t);
    }
    heads.push({ mean: mean(xs), p50: pct(xs, 50), p99: pct(xs, 99) });
  }
  await agent.close();

  const m = median(perRun.map((p) => p.mean));
  const p50 = median(perRun.map((p) => p.p50));
  const p99 = median(perRun.map((p) => p.p99));
  const h = median(heads.map((p) => p.mean));
  details.warmHit = {
    calls: HITS,
    perRun: perRun.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round(v, 4)]))),
    bareHead: heads.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round(v, 4)]))),
    meanResolveMs: round(mean(stages.resolve), 4),
    meanLinkMs: round(mean(stages.link), 4),
  };
  const ms = (x) => `${x.toFixed(3)} ms`;
  row({
    case: `3. warm hit, new dest (mean of ${HITS})`,
    measured: m,
    limit: h,
    ratio: m / h,
    target: 0.35,
    pass: m <= 0.35,
    measuredText: ms(m),
    limitText: `${ms(h)} (bare HEAD)`,
    ratioText: x2(m / h),
    targetText: '<= 0.350 ms',
  });
  row({
    case: '3. warm hit p50 / p99',
    measured: { p50, p99 },
    measuredText: `${ms(p50)} / ${ms(p99)}`,
    limitText: `${ms(median(heads.map((p) => p.p50)))} / ${ms(median(heads.map((p) => p.p99)))}`,
    targetText: '(report)',
  });
}

/** Case 4: 8 CLI processes fetch the same uncached image at once, against one CLI cold miss. */
async function concurrentCli(server, img) {
  const url = server.url(img.name);
  const key = `/${img.name}`;
  const args = (dest, masterDir) => [
    'fetch',
    url,
    dest,
    '--master-dir',
    masterDir,
    '--no-force-raw',
    '--json',
    '--quiet',
    '--checksum',
    `sha256:${img.sha}`,
  ];
  const single = [];
  const eight = [];
  const getCounts = [];
  const runs = [];
  const failures = [];
  for (let r = 0; r < RUNS; r++) {
    let dir = freshDir('cli-1');
    await server.reset();
    await waitQuiet();
    const one = await runOk(CLI, args(path.join(dir, 'dest'), path.join(dir, 'master')));
    const res1 = JSON.parse(one.out);
    if (res1.cacheHit !== false) throw new Error(`CLI cold miss was not a miss: ${one.out}`);
    single.push(one.s);
    rmrf(dir);

    dir = freshDir('cli-8');
    await server.reset();
    await waitQuiet();
    const t = now();
    const all = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) =>
        run(CLI, args(path.join(dir, `dest-${i}`), path.join(dir, 'master'))),
      ),
    );
    const wall = (now() - t) / 1000;
    const stats = await server.stats();
    const gets = stats.gets[key] ?? 0;
    // A failed process is recorded (it is a finding), not fatal: the others still tell the GET count and times.
    const results = [];
    for (const a of all) {
      if (a.code === 0) results.push(JSON.parse(a.out));
      else {
        failures.push({
          run: r + 1,
          exit: a.code,
          out: a.out.trim().slice(0, 400),
          err: a.err.trim().slice(0, 400),
        });
        log(`a concurrent CLI failed (exit ${a.code}): ${a.out.trim().slice(0, 300)}`);
      }
    }
    const misses = results.filter((x) => !x.cacheHit).length;
    eight.push(wall);
    getCounts.push(gets);
    runs.push({
      single: round(one.s),
      wall: round(wall),
      each: all.map((a) => round(a.s)),
      gets,
      misses,
      waitMs: results.map((x) => round(x.durations.wait ?? 0, 0)),
    });
    log(
      `CLI run ${r + 1}: one ${one.s.toFixed(3)} s, ${CONCURRENT} at once ${wall.toFixed(3)} s, GETs ${gets}, misses ${misses}`,
    );
    rmrf(dir);
  }
  const s = median(single);
  const w = median(eight);
  const g = Math.max(...getCounts);
  details.concurrentCli = { single, eight, getCounts, runs, failures };
  row({
    case: `4. ${CONCURRENT} CLIs same image: GETs (max of runs)`,
    measured: g,
    limit: 1,
    measuredText: String(g),
    limitText: '1',
    ratioText: '-',
    target: 1,
    targetText: '1',
    pass: g === 1,
  });
  row({
    case: `4. ${CONCURRENT} CLIs same image: failed processes`,
    measured: failures.length,
    measuredText: `${failures.length} of ${CONCURRENT * RUNS}`,
    limitText: '-',
    ratioText: '-',
    target: 0,
    targetText: '0',
    pass: failures.length === 0,
  });
  row({
    case: `4. ${CONCURRENT} CLIs same image: wall vs 1 CLI miss`,
    measured: w,
    limit: s,
    ratio: w / s,
    target: 1.1,
    pass: w / s <= 1.1,
    measuredText: s3(w),
    limitText: s3(s),
    ratioText: x2(w / s),
    targetText: '<= 1.10x',
  });
}

/** `n` files of FILE_SIZE bytes in `dir`, made the same way for the engine's folder and rm's. */
function makeFiles(dir, n, mtimeOf) {
  fs.mkdirSync(dir, { recursive: true });
  const body = randomBytes(FILE_SIZE);
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `master-${String(i).padStart(5, '0')}.img`);
    fs.writeFileSync(f, body);
    const t = mtimeOf(i);
    fs.utimesSync(f, t, t);
  }
}

async function timeCleanUpAgainstRm(label, core, cacheOpts, mtimeOf, rmCount, expectRemoved) {
  const engine = [];
  const rm = [];
  for (let r = 0; r < RUNS; r++) {
    const a = freshDir(`${label}-cache`);
    const b = freshDir(`${label}-rm`);
    makeFiles(a, FILES, mtimeOf);
    makeFiles(b, rmCount, mtimeOf);
    await sleep(50); // ctime (now, unsettable) must be older than the TTL threshold
    const cache = new core.ImageCache({ masterDir: a, forceRaw: false, ...cacheOpts });
    await cache.start(); // its folders, made once per cache: not part of a clean-up
    const timeEngine = async () => {
      await waitQuiet();
      const t = now();
      const res = await cache.cleanUp();
      engine.push((now() - t) / 1000);
      if (res.removed.length !== expectRemoved)
        throw new Error(`clean-up removed ${res.removed.length}, expected ${expectRemoved}`);
    };
    const timeRm = async () => {
      await waitQuiet();
      rm.push((await runOk('rm', ['-rf', b])).s);
    };
    // Alternate which goes first, so neither always gets the quieter moment.
    if (r % 2 === 0) {
      await timeEngine();
      await timeRm();
    } else {
      await timeRm();
      await timeEngine();
    }
    log(`${label} run ${r + 1}: engine ${engine.at(-1).toFixed(3)} s, rm -rf ${rm.at(-1).toFixed(3)} s`);
    rmrf(a);
    rmrf(b);
  }
  return { engine, rm, e: median(engine), l: median(rm) };
}

/** Case 5: clean-up of 10,000 expired masters against rm -rf of the same folder. */
async function cleanUpExpired(core) {
  const past = new Date(Date.now() - 30 * 86400_000);
  const { engine, rm, e, l } = await timeCleanUpAgainstRm(
    'ttl',
    core,
    { cacheTtl: 0 },
    () => past,
    FILES,
    FILES,
  );
  details.cleanUpExpired = { files: FILES, engine, rm };
  row({
    case: `5. clean-up ${FILES} expired vs rm -rf ${FILES}`,
    measured: e,
    limit: l,
    ratio: e / l,
    target: 1.1,
    pass: e / l <= 1.1,
    measuredText: s3(e),
    limitText: s3(l),
    ratioText: x2(e / l),
    targetText: '<= 1.10x',
  });
}

/** Case 6: clean-up of 10,000 fresh masters, twice the size limit, against rm -rf of the 5,000 it removes. */
async function cleanUpOverSize(core) {
  const base = Date.now() - 3600_000;
  const half = FILES / 2;
  const { engine, rm, e, l } = await timeCleanUpAgainstRm(
    'size',
    core,
    { cacheSize: (FILES * FILE_SIZE) / 2 },
    (i) => new Date(base + i * 100),
    half,
    half,
  );
  details.cleanUpOverSize = { files: FILES, removed: half, engine, rm };
  row({
    case: `6. clean-up ${FILES} fresh, 2x size vs rm -rf ${half}`,
    measured: e,
    limit: l,
    ratio: e / l,
    measuredText: s3(e),
    limitText: s3(l),
    ratioText: x2(e / l),
    targetText: '(report)',
  });
}

/** Case 7: peak RSS of a cold fetch in a process of its own, for the image and the 4 GiB one. */
async function peakRss(server, img, big) {
  const child = path.join(BENCH_DIR, 'child-fetch.cjs');
  const baseline = JSON.parse((await runOk(process.execPath, [child, '--baseline'])).out).maxRSSKiB / 1024;
  const measure = async (i) => {
    const dir = freshDir('rss');
    await waitQuiet();
    const r = await runOk(process.execPath, [
      child,
      server.url(i.name),
      path.join(dir, 'dest'),
      path.join(dir, 'master'),
      i.sha,
    ]);
    rmrf(dir);
    const j = JSON.parse(r.out);
    if (j.cacheHit) throw new Error('RSS fetch was a hit');
    return { mib: j.maxRSSKiB / 1024, s: j.s, durations: j.durations };
  };
  const small = await measure(img);
  details.peakRss = { baselineMiB: round(baseline, 1), [sizeLabel]: small };
  const mib = (x) => `${x.toFixed(1)} MiB`;
  row({
    case: `7. peak RSS, cold fetch ${sizeLabel}`,
    measured: small.mib,
    limit: baseline,
    measuredText: mib(small.mib),
    limitText: `${mib(baseline)} (engine loaded, idle)`,
    ratioText: '-',
    target: 100,
    targetText: '<= 100 MiB',
    pass: small.mib <= 100,
  });
  if (!big) return;
  const large = await measure(big);
  details.peakRss['4 GiB'] = large;
  details.peakRss.bigColdMissGBps = round(big.size / large.s / 1e9);
  row({
    case: '7. peak RSS, cold fetch 4 GiB',
    measured: large.mib,
    limit: small.mib,
    ratio: large.mib / small.mib,
    measuredText: mib(large.mib),
    limitText: `${mib(small.mib)} (${sizeLabel})`,
    ratioText: x2(large.mib / small.mib),
    target: 100,
    targetText: '<= 100 MiB, ~same',
    pass: large.mib <= 100 && large.mib - small.mib <= 0.1 * small.mib,
  });
}

main().catch((err) => {
  console.error(err);
  rmrf(SCRATCH);
  process.exit(1);
});
