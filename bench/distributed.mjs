// Issue 4 cases (distributed mode), run from bench/run.mjs, against a real Redis (IMAGECACHE_BENCH_REDIS, default
// redis://127.0.0.1:6379) under a key prefix of their own, deleted at the end:
//   11  warm hit through Redis (ImageCacheClient -> `imagecache worker` -> completion event), sequential calls to
//       new destinations: p50 and p99, beside the embedded warm hit of the same master in the same run; then an
//       untimed pass under MONITOR that counts Redis commands per job (client, worker, inside Lua scripts)
//   12  warm hits/s with IN_FLIGHT calls in flight (BURST in all), 1 worker process, then 2 replicas side by side,
//       beside the embedded engine doing the same in-process
//   13  cold miss of the image through the queue vs the embedded cold miss of the same image, alternating
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import {
  CLI,
  cpuS,
  ROOT,
  WORK,
  freshDir,
  log,
  median,
  now,
  pct,
  requireDist,
  rmrf,
  round,
  sleep,
  waitQuiet,
} from './lib.mjs';

const REDIS_URL = process.env.IMAGECACHE_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const HOST = 'bench';
const CACHE = 'bench';
const WARM = 200;
const MONITORED_HITS = 100;
const queueRequire = createRequire(path.join(ROOT, 'packages/queue/package.json'));

/** Entry point from run.mjs: ctx = { cases, runs, hits, burst, inFlight, prof, img, server, core, row, details, sizeLabel }. */
export async function distributedCases(ctx) {
  const { cases, row, details } = ctx;
  const mine = [11, 12, 13].filter((c) => cases.has(c));
  if (mine.length === 0) return;
  const Redis = queueRequire('ioredis');
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    log(`no Redis at ${REDIS_URL} (${err.message}): cases ${mine.join(',')} skipped`);
    for (const c of mine)
      row({ case: `${c}. (distributed)`, measuredText: `skipped: no Redis at ${REDIS_URL}` });
    redis.disconnect();
    return;
  }
  const prefix = `{imagecache-bench-${randomBytes(4).toString('hex')}}`;
  const queue = await requireDist('packages/queue/dist');
  const dir = freshDir('dist');
  const masterDir = path.join(dir, 'master');
  const configFile = path.join(dir, 'worker.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      host: HOST,
      caches: [{ name: CACHE, masterDir, forceRaw: false }],
      redis: { url: REDIS_URL, prefix },
      sweepInterval: 0,
      logLevel: 'warn',
    }),
  );
  const d = {
    ...ctx,
    redis,
    prefix,
    dir,
    masterDir,
    configFile,
    workers: [],
    hrefs: {},
    calls: 0,
    noResult: 0,
  };
  details.distributed = {
    redis: REDIS_URL,
    prefix,
    workerConcurrency: 'config default (downloadConcurrency)',
  };
  try {
    d.workers.push(await startWorker(configFile));
    d.client = new queue.ImageCacheClient({
      redis: { mode: 'standalone', url: REDIS_URL, prefix },
      pollIntervalMs: 5000,
    });
    await warmUp(d);
    if (cases.has(13)) await coldMissQueue(d);
    if (cases.has(11)) await warmHitsQueue(d);
    if (cases.has(12)) await throughput(d);
    details.distributed.calls = { total: d.calls, resolvedWithoutResult: d.noResult };
    row({
      case: `${mine.join(',')}. calls through the queue resolved with null (no result)`,
      measured: d.noResult,
      measuredText: `${d.noResult} of ${d.calls}`,
      limitText: '-',
      ratioText: '-',
      target: 0,
      targetText: '0',
      pass: d.noResult === 0,
    });
  } finally {
    await d.client?.close().catch(() => undefined);
    await Promise.all(d.workers.map((w) => w.stop()));
    const n = await deleteKeys(redis, prefix).catch(
      (err) => (log(`could not delete ${prefix} keys: ${err.message}`), 0),
    );
    log(`deleted ${n} Redis keys under ${prefix}`);
    redis.disconnect();
    rmrf(dir);
  }
}

/** `imagecache worker --config FILE`, resolved once it says "serving"; stop() sends SIGTERM and waits. */
export async function startWorker(configFile, { profDir } = {}) {
  const args = ['worker', '--config', configFile, '--grace', '5'];
  // --cpu-prof is refused in NODE_OPTIONS: then node runs the CLI's unbundled main.js itself (readable profiles).
  const [cmd, argv] = profDir
    ? [
        process.execPath,
        ['--cpu-prof', `--cpu-prof-dir=${profDir}`, path.join(ROOT, 'apps/cli/dist/main.js'), ...args],
      ]
    : [CLI, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let exited = false;
  const exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    }),
  );
  await new Promise((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`worker not serving within 30 s: ${err.slice(-800)}`)),
      30_000,
    );
    child.stderr.on('data', (b) => {
      err = (err + b).slice(-8192);
      if (/serving/.test(err)) {
        clearTimeout(t);
        resolve();
      }
    });
    exit.then(({ code, signal }) => {
      clearTimeout(t);
      reject(new Error(`worker exited (${code ?? signal}) before serving: ${err.slice(-800)}`));
    });
  });
  return {
    pid: child.pid,
    stderr: () => err,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exit;
      clearTimeout(t);
    },
  };
}

async function deleteKeys(redis, prefix) {
  // The prefix's braces are literal in a SCAN pattern; '*' ends it.
  const stream = redis.scanStream({ match: `${prefix}*`, count: 1000 });
  let n = 0;
  for await (const ks of stream) {
    if (ks.length) n += await redis.unlink(...ks);
  }
  return n;
}

const hrefOf = (d, tag) => `${d.server.url(d.img.name)}?bench=${tag}-${randomBytes(3).toString('hex')}`;
const fetchOpts = (d) => ({ expectedChecksum: `sha256:${d.img.sha}` });

/** One fetch through the queue; checks it is the hit or miss it should be. */
async function viaQueue(d, href, dest, wantHit) {
  const res = await d.client.fetchImage({ host: HOST, cache: CACHE, href, dest, ...fetchOpts(d) });
  d.calls++;
  if (res === null || typeof res !== 'object') {
    // A finding, not fatal: the job did complete (see the row "resolved without a result").
    if (d.noResult++ === 0)
      log(`a fetch through the queue resolved with ${JSON.stringify(res)} instead of a result`);
    if (wantHit === false)
      throw new Error(`a cold miss through the queue resolved with ${JSON.stringify(res)}`);
    return res;
  }
  if (wantHit !== undefined && res.cacheHit !== wantHit) {
    throw new Error(
      `a fetch through the queue was ${res.cacheHit ? 'a hit' : 'a miss'}: ${JSON.stringify(res)}`,
    );
  }
  return res;
}

/**
 * Untimed: the worker's and this process's first miss (connections, JIT), and the master the warm hits use.
 * The embedded side warms up on its own master in a folder of its own.
 */
async function warmUp(d) {
  const dest = freshDir('dist-warm');
  d.hrefs.hit = hrefOf(d, 'hit');
  await viaQueue(d, d.hrefs.hit, path.join(dest, 'q'), false);
  const e = new d.core.ImageCache({ masterDir: path.join(dest, 'master'), forceRaw: false });
  await e.fetchImage(hrefOf(d, 'warm-embedded'), path.join(dest, 'e'), fetchOpts(d));
  rmrf(dest);
}

/** Case 13: cold miss through the queue vs embedded, same image, alternating which goes first. */
async function coldMissQueue(d) {
  const { runs, row, details, core, sizeLabel } = d;
  const viaQ = [];
  const embedded = [];
  const runsOut = [];
  for (let r = 0; r < runs; r++) {
    const dest = freshDir(`dist-cold-${r}`);
    const doQueue = async () => {
      const href = hrefOf(d, `cold-q-${r}`);
      await waitQuiet();
      const t = now();
      const res = await viaQueue(d, href, path.join(dest, 'q'), false);
      viaQ.push((now() - t) / 1000);
      // The worker's master of this run is not needed again (the warm hits use their own).
      for (const f of fs.readdirSync(d.masterDir)) {
        if (f.startsWith(core.masterName(href, undefined, false))) rmrf(path.join(d.masterDir, f));
      }
      return res;
    };
    const doEmbedded = async () => {
      const cache = new core.ImageCache({ masterDir: path.join(dest, 'master'), forceRaw: false });
      await waitQuiet();
      const t = now();
      const res = await cache.fetchImage(hrefOf(d, `cold-e-${r}`), path.join(dest, 'e'), fetchOpts(d));
      embedded.push((now() - t) / 1000);
      if (res.cacheHit) throw new Error('embedded cold miss was a hit');
      return res;
    };
    let q;
    let e;
    if (r % 2 === 0) {
      q = await doQueue();
      e = await doEmbedded();
    } else {
      e = await doEmbedded();
      q = await doQueue();
    }
    const ms = (x) => Object.fromEntries(Object.entries(x.durations ?? {}).map(([k, v]) => [k, round(v, 1)]));
    runsOut.push({
      queue: round(viaQ.at(-1)),
      embedded: round(embedded.at(-1)),
      queueDurationsMs: ms(q),
      embeddedDurationsMs: ms(e),
    });
    log(
      `cold miss run ${r + 1}: through the queue ${viaQ.at(-1).toFixed(3)} s, embedded ${embedded.at(-1).toFixed(3)} s`,
    );
    rmrf(dest);
  }
  const m = median(viaQ);
  const l = median(embedded);
  const paired = median(viaQ.map((x, i) => x / embedded[i]));
  details.distributed.coldMiss = { queue: viaQ, embedded, runs: runsOut, pairedRatioMedian: round(paired) };
  row({
    case: `13. cold miss ${sizeLabel} +sha256 through the queue vs embedded`,
    measured: m,
    limit: l,
    ratio: m / l,
    target: 1.05,
    pass: m / l <= 1.05,
    measuredText: `${m.toFixed(3)} s`,
    limitText: `${l.toFixed(3)} s (embedded)`,
    ratioText: `${(m / l).toFixed(2)}x (paired ${paired.toFixed(2)}x)`,
    targetText: '<= 1.05x',
  });
}

/** Sequential warm hits: `n` calls after WARM untimed ones; per-call ms. */
async function sequential(call, n) {
  for (let i = 0; i < Math.min(WARM, n); i++) await call(`w${i}`);
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = now();
    await call(`h${i}`);
    xs[i] = now() - t;
  }
  return [...xs];
}

/** Case 11: warm hits through Redis, sequential, p50/p99; the embedded warm hit of the same master beside them. */
async function warmHitsQueue(d) {
  const { runs, hits, row, details, core } = d;
  const href = d.hrefs.hit;
  const embeddedCache = new core.ImageCache({ masterDir: d.masterDir, forceRaw: false });
  const q = [];
  const e = [];
  for (let r = 0; r < runs; r++) {
    const dest = freshDir('dist-hits');
    await waitQuiet({ sync: false });
    const xs = await sequential((n) => viaQueue(d, href, path.join(dest, `q-${n}`), true), hits);
    q.push({
      p50: pct(xs, 50),
      p99: pct(xs, 99),
      mean: xs.reduce((a, b) => a + b, 0) / xs.length,
      max: Math.max(...xs),
    });
    await waitQuiet({ sync: false });
    const ys = await sequential(async (n) => {
      const res = await embeddedCache.fetchImage(href, path.join(dest, `e-${n}`), fetchOpts(d));
      if (!res.cacheHit) throw new Error('embedded warm hit was a miss');
    }, hits);
    e.push({ p50: pct(ys, 50), p99: pct(ys, 99), mean: ys.reduce((a, b) => a + b, 0) / ys.length });
    log(
      `warm hits run ${r + 1}: through Redis p50 ${q.at(-1).p50.toFixed(3)} / p99 ${q.at(-1).p99.toFixed(3)} ms; embedded p50 ${e.at(-1).p50.toFixed(3)} ms`,
    );
    rmrf(dest);
  }
  const p50 = median(q.map((x) => x.p50));
  const p99 = median(q.map((x) => x.p99));
  const e50 = median(e.map((x) => x.p50));
  const e99 = median(e.map((x) => x.p99));
  const r4 = (x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, round(v, 4)]));
  details.distributed.warmHit = { calls: hits, queue: q.map(r4), embedded: e.map(r4) };
  const ms = (x) => `${x.toFixed(3)} ms`;
  row({
    case: `11. warm hit through Redis, p50 (${hits} sequential)`,
    measured: p50,
    limit: e50,
    ratio: p50 / e50,
    target: 3,
    pass: p50 <= 3,
    measuredText: ms(p50),
    limitText: `${ms(e50)} (embedded)`,
    ratioText: `${(p50 / e50).toFixed(2)}x`,
    targetText: '<= 3 ms',
  });
  row({
    case: '11. warm hit through Redis, p99',
    measured: p99,
    limit: e99,
    ratio: p99 / e99,
    target: 10,
    pass: p99 <= 10,
    measuredText: ms(p99),
    limitText: `${ms(e99)} (embedded)`,
    ratioText: `${(p99 / e99).toFixed(2)}x`,
    targetText: '<= 10 ms',
  });
  details.distributed.redisCommandsPerHit = await countCommands(d, href);
}

/** Local TCP ports of this process's sockets (/proc/self/fd -> socket inodes -> /proc/net/tcp{,6}). */
function ownTcpPorts() {
  const inodes = new Set();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9])) ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}

/** BullMQ's Lua scripts by the sha1 ioredis sends with EVALSHA, to name them. */
function scriptNames() {
  const names = new Map();
  try {
    const dir = path.dirname(queueRequire.resolve('bullmq'));
    const scripts = createRequire(path.join(dir, 'index.js'))('./scripts/index.js');
    for (const s of Object.values(scripts)) {
      if (s?.content) names.set(createHash('sha1').update(s.content).digest('hex'), s.name);
    }
  } catch {
    // unnamed then
  }
  return names;
}

/**
 * Untimed: MONITOR while MONITORED_HITS sequential warm hits run, counting the commands of this prefix's
 * connections per job: the client's (this process's sockets), the worker's, and those inside Lua scripts.
 */
async function countCommands(d, href) {
  const names = scriptNames();
  const mon = await d.redis.monitor();
  const bySource = new Map();
  let lastSource = 'unknown';
  mon.on('monitor', (_time, args, source) => {
    const cmd = String(args[0]).toLowerCase();
    if (source === 'lua') {
      const s = bySource.get(lastSource);
      if (s) s.lua++;
      return;
    }
    lastSource = source;
    let s = bySource.get(source);
    if (!s) bySource.set(source, (s = { n: 0, lua: 0, ours: false, cmds: {} }));
    s.n++;
    if (args.some((a) => String(a).includes(d.prefix))) s.ours = true;
    const name =
      cmd === 'evalsha' ? `evalsha ${names.get(String(args[1])) ?? String(args[1]).slice(0, 8)}` : cmd;
    s.cmds[name] = (s.cmds[name] ?? 0) + 1;
  });
  await sleep(200);
  const dest = freshDir('dist-monitor');
  const own = ownTcpPorts();
  for (let i = 0; i < MONITORED_HITS; i++) await viaQueue(d, href, path.join(dest, `m${i}`), true);
  await sleep(300);
  mon.disconnect();
  rmrf(dest);
  const side = () => ({ commands: 0, luaCommands: 0, byCommand: {} });
  const out = { client: side(), worker: side() };
  for (const [source, s] of bySource) {
    if (!s.ours) continue;
    const port = Number(source.split(':').pop());
    const o = own.has(port) ? out.client : out.worker;
    o.commands += s.n;
    o.luaCommands += s.lua;
    for (const [k, v] of Object.entries(s.cmds)) o.byCommand[k] = (o.byCommand[k] ?? 0) + v;
  }
  const perJob = (o) => ({
    roundTrips: round(o.commands / MONITORED_HITS, 2),
    commandsInLua: round(o.luaCommands / MONITORED_HITS, 2),
    byCommand: Object.fromEntries(
      Object.entries(o.byCommand)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, round(v / MONITORED_HITS, 2)]),
    ),
  });
  const res = { hits: MONITORED_HITS, client: perJob(out.client), worker: perJob(out.worker) };
  log(
    `Redis per warm hit: client ${res.client.roundTrips} commands, worker ${res.worker.roundTrips} (+${res.worker.commandsInLua} inside Lua)`,
  );
  return res;
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (clock ticks of 10 ms). */
function procCpuS(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

/** Who burns the CPU during a burst: this process (the client), the workers, Redis, the upstream server. */
async function cpuMeter(d) {
  const redisPid = Number(/process_id:(\d+)/.exec(await d.redis.info('server'))?.[1]);
  const pids = { workers: d.workers.map((w) => w.pid), redis: [redisPid], upstream: [d.server.pid] };
  const read = () => ({
    client: process.cpuUsage(),
    ...Object.fromEntries(
      Object.entries(pids).map(([k, ps]) => [k, ps.reduce((a, p) => a + procCpuS(p), 0)]),
    ),
  });
  const a = read();
  return (calls) => {
    const b = read();
    const per1000 = (s) => round((1000 * s) / calls, 3);
    const out = { client: per1000(cpuS(process.cpuUsage(a.client))) };
    for (const k of Object.keys(pids)) out[k] = per1000(b[k] - a[k]);
    return out;
  };
}

/** `total` calls, `inFlight` at a time; resolves with calls per second. */
async function burst(call, total, inFlight) {
  let next = 0;
  const t = now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await call(next++);
    }),
  );
  return total / ((now() - t) / 1000);
}

/** Case 12: warm hits/s with `inFlight` concurrent calls, 1 then 2 worker processes; embedded beside them. */
async function throughput(d) {
  const { runs, burst: total, inFlight, row, details, core } = d;
  const href = d.hrefs.hit;
  const cpuSeconds = {};
  const measure = async (label, call) => {
    const xs = [];
    const cpu = (cpuSeconds[label] = []);
    for (let r = 0; r < runs; r++) {
      const dest = freshDir('dist-burst');
      await burst((i) => call(path.join(dest, `w${i}`)), Math.min(WARM, total), inFlight);
      await waitQuiet({ sync: false });
      const meter = await cpuMeter(d);
      xs.push(await burst((i) => call(path.join(dest, `b${i}`)), total, inFlight));
      cpu.push(meter(total));
      log(
        `${label} run ${r + 1}: ${xs.at(-1).toFixed(0)} hits/s; CPU s per 1000 hits ${JSON.stringify(cpu.at(-1))}`,
      );
      rmrf(dest);
    }
    return xs;
  };
  const q = (dest) => viaQueue(d, href, dest, true);
  const embeddedCache = new core.ImageCache({ masterDir: d.masterDir, forceRaw: false });
  const embedded = await measure('embedded burst', async (dest) => {
    const res = await embeddedCache.fetchImage(href, dest, fetchOpts(d));
    if (!res.cacheHit) throw new Error('embedded warm hit was a miss');
  });
  const one = await measure('1 worker burst', q);
  d.workers.push(await startWorker(d.configFile));
  const two = await measure('2 workers burst', q);
  const e = median(embedded);
  const a = median(one);
  const b = median(two);
  details.distributed.throughput = {
    total,
    inFlight,
    embedded,
    oneWorker: one,
    twoWorkers: two,
    cpuSecondsPer1000Hits: cpuSeconds,
  };
  const hs = (x) => `${x.toFixed(0)} hits/s`;
  row({
    case: `12. warm hits/s, ${inFlight} in flight, 1 worker`,
    measured: a,
    limit: e,
    ratio: a / e,
    target: 1000,
    pass: a >= 1000,
    measuredText: hs(a),
    limitText: `${hs(e)} (embedded)`,
    ratioText: `${(a / e).toFixed(2)}x`,
    targetText: '>= 1000/s',
  });
  row({
    case: `12. warm hits/s, ${inFlight} in flight, 2 replicas`,
    measured: b,
    limit: a,
    ratio: b / a,
    measuredText: hs(b),
    limitText: `${hs(a)} (1 worker)`,
    ratioText: `${(b / a).toFixed(2)}x`,
    targetText: '(report)',
  });
  if (d.prof) details.distributed.workerProfile = await profileBurst(d, q);
}

/**
 * Untimed (--prof): one burst against a worker started with --cpu-prof (the others stopped), and the top self
 * times of its profile. The .cpuprofile stays in bench/.work/prof/ (open it in Chrome DevTools).
 */
async function profileBurst(d, call) {
  await Promise.all(d.workers.splice(0).map((w) => w.stop()));
  const profDir = path.join(WORK, 'prof', new Date().toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(profDir, { recursive: true });
  const w = await startWorker(d.configFile, { profDir });
  d.workers.push(w);
  const dest = freshDir('dist-prof');
  const rate = await burst((i) => call(path.join(dest, `p${i}`)), d.burst, d.inFlight);
  rmrf(dest);
  await w.stop();
  d.workers.splice(d.workers.indexOf(w), 1);
  const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  const summary = { dir: path.relative(ROOT, profDir), hits: d.burst, hitsPerS: round(rate, 0), files };
  if (files.length)
    Object.assign(summary, topSelf(JSON.parse(fs.readFileSync(path.join(profDir, files[0]), 'utf8'))));
  log(
    `worker profile in ${profDir}: ${(summary.byOwner ?? [])
      .slice(0, 8)
      .map((t) => `${t.fn} ${t.pct}%`)
      .join(', ')}`,
  );
  return summary;
}

/** Who a frame's code belongs to: a package of ours, a dependency, or node itself. */
function ownerOf(url) {
  const dep = /node_modules\/\.pnpm\/(@?[^@/]+)/.exec(url);
  if (dep) return dep[1];
  const ours = /\/(packages|apps)\/([^/]+)\/dist\//.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  return undefined;
}

/**
 * Self time by function of a .cpuprofile (top 25), and all time by owner: each sample goes to the innermost
 * frame that belongs to one of our packages or a dependency (so a socket write counts for ioredis, which made it).
 */
function topSelf(prof) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const owners = new Map();
  const dt = prof.timeDeltas ?? [];
  let total = 0;
  prof.samples.forEach((id, i) => {
    const n = byId.get(id);
    const us = dt[i] ?? 0;
    total += us;
    let owner;
    for (let x = id; x !== undefined && !owner; x = parent.get(x)) owner = ownerOf(byId.get(x).callFrame.url);
    owner ??= ['(idle)', '(garbage collector)', '(program)'].includes(n.callFrame.functionName)
      ? n.callFrame.functionName
      : '(node)';
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const cf = n.callFrame;
    const where = cf.url
      ? cf.url
          .replace(/^file:\/\//, '')
          .replace(/.*node_modules\/\.pnpm\/([^/]+)\/.*/, '$1')
          .replace(ROOT + '/', '')
      : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}${cf.url ? `:${cf.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const list = (m, n) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, us]) => ({ fn, ms: round(us / 1000, 1), pct: round((100 * us) / total, 1) }));
  return { totalMs: round(total / 1000, 0), byOwner: list(owners, 15), topSelf: list(self, 25) };
}
