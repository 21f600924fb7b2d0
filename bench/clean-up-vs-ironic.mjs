#!/usr/bin/env node
// Clean-up side by side with Ironic's (Debian python3-ironic, eventlet as ironic-conductor runs it): the anchors'
// clean-up cases (../shared/anchors) name their 10,000 files `fNNNNN`, which this cache leaves alone (foreign
// files, issue 11), so they can't compare the two. Here both sides get the same 10,000 × 4 KiB files named as
// Ironic names its masters (UUIDs), case by case in the same rounds, the order alternating:
// - expired:  TTL 1 s, every file expired (made, then 1.3 s waited): all 10,000 go;
// - oversize: size limit half the total, nothing expired: the oldest half goes.
//
//   node bench/clean-up-vs-ironic.mjs [--rounds 3] [--files 10000]
//
// Each side runs in a fresh process; what is timed is the clean-up call alone (its CPU too), after `sync`.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const rounds = Number(flag('--rounds', '3'));
const files = Number(flag('--files', '10000'));
const SIZE = 4096;

const python = `
import json, os, sys, time, uuid, resource
import ironic.cmd  # eventlet.monkey_patch(os=False), as ironic-conductor does
from ironic.conf import CONF
CONF([], project='ironic', default_config_files=[], default_config_dirs=[])
from ironic.drivers.modules import image_cache
case, master, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(master)
payload = bytes(range(256)) * (size // 256)
for i in range(n):
    with open(os.path.join(master, str(uuid.uuid4())), 'wb') as f:
        f.write(payload)
if case == 'expired':
    cache = image_cache.ImageCache(master, 20 * 2**30, 1)
    time.sleep(1.3)
else:
    cache = image_cache.ImageCache(master, n * size // 2, 7 * 86400)
os.sync()
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
cache.clean_up()
wall = time.perf_counter() - t0; r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({'wall': wall, 'cpu': (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                  'left': len(os.listdir(master))}))
`;

const node = `
const fs = require('node:fs'), path = require('node:path'), crypto = require('node:crypto');
const { ImageCache } = require(${JSON.stringify(path.join(repo, 'packages/core/dist/index.js'))});
const [case_, master, n, size] = process.argv.slice(1);
fs.mkdirSync(master);
const payload = Buffer.alloc(Number(size), 7);
for (let i = 0; i < Number(n); i++) fs.writeFileSync(path.join(master, crypto.randomUUID()), payload);
(async () => {
  const cache = case_ === 'expired'
    ? new ImageCache({ masterDir: master, cacheSize: 20 * 2 ** 30, cacheTtl: 1 })
    : new ImageCache({ masterDir: master, cacheSize: (Number(n) * Number(size)) / 2, cacheTtl: 7 * 86400 });
  if (case_ === 'expired') await new Promise((r) => setTimeout(r, 1300));
  require('node:child_process').execSync('sync');
  const c0 = process.cpuUsage(), t0 = performance.now();
  await cache.cleanUp();
  const wall = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
  const left = fs.readdirSync(master).filter((f) => !f.startsWith('.')).length;
  console.log(JSON.stringify({ wall, cpu: (c.user + c.system) / 1e6, left }));
})();
`;

function side(kind, case_, work) {
  const master = path.join(work, `${kind}-${case_}`);
  const [cmd, argv] =
    kind === 'ironic' ? ['/usr/bin/python3', ['-c', python]] : [process.execPath, ['-e', node]];
  const r = spawnSync(cmd, [...argv, case_, master, String(files), String(SIZE)], { encoding: 'utf8' });
  fs.rmSync(master, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${kind} ${case_} failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const want = case_ === 'expired' ? 0 : files / 2;
  if (out.left !== want) throw new Error(`${kind} ${case_}: ${out.left} files left, ${want} expected`);
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clean-up-vs-ironic-'));
try {
  for (const case_ of ['expired', 'oversize']) {
    const wall = [];
    const cpu = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? ['imagecache', 'ironic'] : ['ironic', 'imagecache'];
      const got = Object.fromEntries(order.map((k) => [k, side(k, case_, work)]));
      wall.push(got.imagecache.wall / got.ironic.wall);
      cpu.push(got.imagecache.cpu / got.ironic.cpu);
      console.log(
        `${case_} round ${r + 1}: imagecache ${got.imagecache.wall.toFixed(3)} s (cpu ${got.imagecache.cpu.toFixed(2)}), ` +
          `ironic ${got.ironic.wall.toFixed(3)} s (cpu ${got.ironic.cpu.toFixed(2)})`,
      );
    }
    console.log(
      `${case_}: imagecache / Ironic, median of the rounds: wall ${median(wall).toFixed(2)}× ` +
        `(${Math.min(...wall).toFixed(2)}–${Math.max(...wall).toFixed(2)}), CPU ${median(cpu).toFixed(2)}×`,
    );
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
