// Helpers shared by bench/run.mjs and bench/diag.mjs.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');
export const WORK = path.join(BENCH_DIR, '.work');
export const IMAGES = path.join(WORK, 'images');
export const SCRATCH = path.join(WORK, 'scratch');
export const CLI = path.join(ROOT, 'bin', 'imagecache');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const require = createRequire(import.meta.url);
/** undici as the engine gets it (pnpm keeps it out of the root node_modules). */
export const requireUndici = () => createRequire(path.join(ROOT, 'packages/sources/package.json'))('undici');

/**
 * Requires a compiled package, retrying a few times: other people may be rebuilding dist/ right now.
 */
export async function requireDist(rel) {
  const file = path.join(ROOT, rel);
  for (let i = 0; ; i++) {
    try {
      return require(file);
    } catch (err) {
      if (i >= 10)
        throw new Error(
          `cannot load ${file} (run \`TURBO_TELEMETRY_DISABLED=1 pnpm build\`): ${err.message}`,
        );
      for (const k of Object.keys(require.cache)) if (k.includes('/dist/')) delete require.cache[k];
      await sleep(2000);
    }
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
export const round = (x, d = 3) =>
  x === undefined || x === null || Number.isNaN(x) ? x : Number(x.toFixed(d));

export function log(...a) {
  process.stderr.write(`[bench] ${a.join(' ')}\n`);
}

export function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

/** A fresh empty scratch folder `name` (same filesystem as the images). */
export function freshDir(name) {
  const d = path.join(SCRATCH, name);
  rmrf(d);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Runs a command to completion; resolves with wall seconds, exit code, stdout, stderr. */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const t = now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ s: (now() - t) / 1000, code, out, err }));
  });
}

export async function runOk(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.err.slice(0, 500)}`);
  return r;
}

/**
 * An incompressible file of `size` bytes in IMAGES (AES-CTR keystream: as random as /dev/urandom for any
 * compressor, 5x faster to make), reused between runs, with its sha256 cached beside it.
 */
export function ensureImage(size) {
  fs.mkdirSync(IMAGES, { recursive: true });
  const name = `img-${size / MiB}m.bin`;
  const file = path.join(IMAGES, name);
  const sumFile = file + '.sha256';
  if (!fs.existsSync(file) || fs.statSync(file).size !== size) {
    log(`writing ${size / MiB} MiB of random bytes to ${file}`);
    rmrf(sumFile);
    const r = spawnSync(
      'bash',
      [
        '-o',
        'pipefail',
        '-c',
        `openssl enc -aes-128-ctr -pbkdf2 -nosalt -pass pass:$(openssl rand -hex 16) < /dev/zero 2>/dev/null | head -c ${size} > "${file}.tmp" ; test "$(stat -c %s "${file}.tmp")" = ${size} && mv "${file}.tmp" "${file}"`,
      ],
      { stdio: 'inherit' },
    );
    if (r.status !== 0 || !fs.existsSync(file)) throw new Error(`could not write ${file}`);
    // Last-Modified in the past: a fetch's master is always fresh against it.
    const past = new Date(Date.now() - 3600_000);
    fs.utimesSync(file, past, past);
  }
  const st = fs.statSync(file);
  let sha;
  if (fs.existsSync(sumFile)) {
    const [hex, mtime] = fs.readFileSync(sumFile, 'utf8').trim().split(' ');
    if (Number(mtime) === st.mtimeMs) sha = hex;
  }
  if (!sha) {
    const r = spawnSync('openssl', ['dgst', '-sha256', '-r', file], { encoding: 'utf8' });
    sha = r.stdout.split(' ')[0];
    fs.writeFileSync(sumFile, `${sha} ${st.mtimeMs}\n`);
  }
  return { name, file, size, sha };
}

/** Starts bench/server.mjs serving IMAGES in a process of its own. */
export async function startServer() {
  const child = spawn(
    process.execPath,
    [path.join(BENCH_DIR, 'server.mjs'), IMAGES, '0', '--exit-with-stdin'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /listening (\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const getJson = async (p) => (await fetch(base + p)).json();
  return {
    base,
    pid: child.pid,
    url: (name) => `${base}/${name}`,
    stats: () => getJson('/_stats'),
    reset: () => getJson('/_reset'),
    stop: () => {
      child.kill('SIGTERM');
    },
  };
}

function cpuTimes() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}

/** How the waits for a quiet machine went (see waitQuiet). */
export const quietLog = { waits: 0, noisy: 0, waitedMs: 0, minIdle: 1 };

/**
 * The machine is shared: waits (up to maxMs) until the CPUs were at least `idleAtLeast` idle over `sampleMs`, so a
 * timed run doesn't start in the middle of someone else's burst. Flushes dirty pages first (nothing is dropped).
 */
export async function waitQuiet({ idleAtLeast = 0.85, sampleMs = 250, maxMs = 15_000, sync = true } = {}) {
  const t0 = now();
  if (sync) spawnSync('sync');
  let idle = 0;
  for (;;) {
    const a = cpuTimes();
    await sleep(sampleMs);
    const b = cpuTimes();
    idle = (b.idle - a.idle) / Math.max(1, b.total - a.total);
    if (idle >= idleAtLeast || now() - t0 > maxMs) break;
  }
  quietLog.waits++;
  quietLog.waitedMs += now() - t0;
  quietLog.minIdle = Math.min(quietLog.minIdle, idle);
  if (idle < idleAtLeast) {
    quietLog.noisy++;
    log(`machine still busy after ${maxMs} ms (idle ${(idle * 100).toFixed(0)}%): measuring anyway`);
  }
  return idle;
}

/** Formats the result rows as a fixed-width table. */
export function table(rows) {
  const cols = ['case', 'measured', 'limit', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [
    r.case,
    r.measuredText,
    r.limitText,
    r.ratioText,
    r.targetText,
    r.pass === undefined ? '-' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => String(c ?? '').padEnd(w[i])).join('  ');
  return [line(cols), w.map((n) => '-'.repeat(n)).join('  '), ...cells.map(line)].join('\n');
}

/** Seconds of CPU (user + system) in a process.cpuUsage()-shaped object. */
export const cpuS = (u) => (u.user + u.system) / 1e6;
