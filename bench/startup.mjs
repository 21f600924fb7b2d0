#!/usr/bin/env node
// Start-up of the CLI against Node's own: `node -e 0`, `imagecache --version`, `--help`, a warm-hit `fetch` (an
// image already in the master folder, fetched again to a new destination) and a cold miss of an 8 MiB image into an
// empty master folder, both from a local `python3 -m http.server`.
// Rounds alternate the commands, so a busy machine slows all of them alike; read the ratios.
//
//   node bench/startup.mjs [--runs 30] [--cli apps/cli/dist/imagecache.js] [--json FILE]
//
// (--cli apps/cli/dist/main.js times the unbundled build.)
//
// Wall: median of the runs. CPU: user + sys of the children (from /proc/self/stat's cutime + cstime, 10 ms ticks,
// summed over the runs, so the mean is finer than a tick).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const runs = Number(flag('--runs', '30'));
const cliMain = path.resolve(flag('--cli', path.join(repo, 'apps/cli/dist/imagecache.js')));
const jsonOut = flag('--json', undefined);
const TICK = 100; // USER_HZ on Linux

const work = path.join(here, '.work', 'startup');
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(path.join(work, 'www'), { recursive: true });
fs.mkdirSync(path.join(work, 'dest'));
fs.writeFileSync(path.join(work, 'www', 'disk.img'), Buffer.alloc(1 << 20, 7));
// Not random bytes: the inspector may read a partition table in them (and refuse the image).
fs.writeFileSync(path.join(work, 'www', 'small.img'), Buffer.alloc(8 << 20, 7));

const port = await freePort();
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], {
  cwd: path.join(work, 'www'),
  stdio: 'ignore',
});
try {
  await waitForPort(port);
  const href = `http://127.0.0.1:${port}/disk.img`;
  const master = path.join(work, 'master');
  let n = 0;
  const fetchArgs = () => [
    cliMain,
    'fetch',
    href,
    path.join(work, 'dest', `d${n++}.img`),
    '--master-dir',
    master,
    '-q',
  ];
  const coldMaster = path.join(work, 'cold');
  const coldArgs = () => {
    fs.rmSync(coldMaster, { recursive: true, force: true }); // before the clock starts
    return [
      cliMain,
      'fetch',
      `http://127.0.0.1:${port}/small.img`,
      path.join(work, 'dest', `c${n++}.img`),
    ].concat(['--master-dir', coldMaster, '--no-force-raw', '-q']);
  };
  const miss = spawnSync('node', fetchArgs(), { encoding: 'utf8' });
  if (miss.status !== 0) throw new Error(`the first fetch failed: ${miss.stderr}`);

  const cases = [
    { name: 'node -e 0', argv: () => ['-e', '0'] },
    { name: 'imagecache --version', argv: () => [cliMain, '--version'] },
    { name: 'imagecache --help', argv: () => [cliMain, '--help'] },
    { name: 'imagecache fetch (warm hit)', argv: fetchArgs },
    { name: 'imagecache fetch (cold miss, 8 MiB)', argv: coldArgs },
  ];
  for (const c of cases) Object.assign(c, { wall: [], cpuTicks: 0 });
  for (let i = 0; i < 2; i++) for (const c of cases) await run(c.argv()); // warm the page cache
  for (let r = 0; r < runs; r++) {
    for (const c of cases) {
      const argv = c.argv();
      const before = childTicks();
      const t = process.hrtime.bigint();
      const status = await run(argv);
      c.wall.push(Number(process.hrtime.bigint() - t) / 1e6);
      c.cpuTicks += childTicks() - before;
      // An older CLI without --version exits 2: reported, not fatal (to compare builds).
      if (status !== 0) c.failed = status;
    }
  }
  const base = cases[0];
  const rows = cases.map((c) => ({
    case: c.name,
    exit: c.failed ?? 0,
    wallMs: median(c.wall),
    cpuMs: (c.cpuTicks * 1000) / TICK / runs,
  }));
  const [b] = rows;
  console.log(`${runs} rounds, ${cliMain}`);
  console.log('| command | wall p50 | CPU (user+sys) | wall / node -e 0 | CPU / node -e 0 |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    r.wallRatio = r.wallMs / b.wallMs;
    r.cpuRatio = r.cpuMs / b.cpuMs;
    console.log(
      `| ${r.case}${r.exit ? ` (exit ${r.exit})` : ''} | ${r.wallMs.toFixed(0)} ms | ${r.cpuMs.toFixed(0)} ms | ${r.wallRatio.toFixed(2)}× | ${r.cpuRatio.toFixed(2)}× |`,
    );
  }
  if (jsonOut)
    fs.writeFileSync(jsonOut, JSON.stringify({ runs, cli: cliMain, base: base.name, rows }, null, 2));
} finally {
  server.kill();
  fs.rmSync(work, { recursive: true, force: true });
}

function run(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn('node', argv, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

/** user + sys ticks of this process's waited-for children (fields 16 and 17 of /proc/self/stat). */
function childTicks() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[13]) + Number(fields[14]);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitForPort(p) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(p, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`python3 -m http.server did not listen on ${p}`);
}
