import { execFileSync, execSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { ImageCache, type Logger } from '@imagecache/core';
import { mountTmpfs, startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { masters, workLeft } from './helpers';

// Issue 11: no input can fill a disk, and clean-up only touches masters. Every test runs on a small tmpfs,
// watches its free space while the fetch runs, and proves a later good fetch still works.

const MiB = 1 << 20;
const DAY_MS = 24 * 3600_000;
const fsys = mountTmpfs(64);
const skip = 'skip' in fsys ? fsys.skip : undefined;
if (skip) console.log(`bounded-write tests skipped: ${skip}`);
const maybe = skip ? it.skip : it;
const root = () => ('skip' in fsys ? '' : fsys.dir);

let server: ImageServer;
let fixtures: string;
/** An endless body, with or without a (lying) Content-Length, from a raw HTTP server. */
let endless: http.Server;
let endlessGets = 0;
/** Endless GETs whose connection is still open. */
let endlessOpen = 0;
const good = randomBytes(3 * MiB);

beforeAll(async () => {
  fixtures = tmpDir('imagecache-bounds-');
  server = await startImageServer();
  server.route('/good.img', { body: good, lastModified: new Date(0) });
  endless = http.createServer((req, res) => {
    const headers: Record<string, string> = { 'last-modified': new Date(0).toUTCString() };
    if (req.url === '/ten-tib') headers['content-length'] = String(10 * 1024 ** 4);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    endlessGets++;
    endlessOpen++;
    res.once('close', () => endlessOpen--);
    const chunk = Buffer.alloc(MiB, 0x5a);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  endless.closeAllConnections();
  await new Promise((r) => endless.close(r));
  await server.close();
  if (!('skip' in fsys)) fsys.unmount();
});

const endlessUrl = (p: string) => `http://127.0.0.1:${(endless.address() as AddressInfo).port}${p}`;

let n = 0;
const made: string[] = [];
// Each test's folders go after it: the small filesystem must not fill up across tests.
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A cache in a fresh folder of the tmpfs, with a destination folder beside it. */
function setup(opts: Partial<ConstructorParameters<typeof ImageCache>[0]> = {}) {
  const base = path.join(root(), `t${n++}`);
  made.push(base);
  const destDir = path.join(base, 'dest');
  fs.mkdirSync(destDir, { recursive: true });
  const cache = new ImageCache({
    masterDir: path.join(base, 'master'),
    forceRaw: false,
    retryDelayMs: 10,
    downloadRetries: 0,
    ...opts,
  });
  return { cache, base, destDir, dest: (f: string) => path.join(destDir, f) };
}

const freeNow = () => {
  const s = fs.statfsSync(root());
  return s.bavail * s.bsize;
};

/**
 * The least free space seen on the tmpfs while `fn` runs (polled every 2 ms), and the most it used: the
 * filesystem never fills when `minFree` stays above 0.
 */
async function lowestFree<T>(fn: () => Promise<T>): Promise<{ value: T; minFree: number; used: number }> {
  const start = freeNow();
  let minFree = start;
  const look = () => (minFree = Math.min(minFree, freeNow()));
  const timer = setInterval(look, 2);
  try {
    const value = await fn();
    look();
    return { value, minFree, used: start - minFree };
  } finally {
    clearInterval(timer);
  }
}

/** What every refused fetch must leave: no master, no work, nothing at or beside the destination. */
async function expectNothingLeft(s: ReturnType<typeof setup>) {
  expect(masters(s.cache)).toEqual([]);
  expect(workLeft(s.cache)).toEqual([]);
  expect(fs.readdirSync(s.destDir)).toEqual([]);
  const later = await s.cache.fetchImage(server.url('/good.img'), s.dest('later'));
  expect(fs.readFileSync(s.dest('later')).equals(good)).toBe(true);
  expect(later.cacheHit).toBe(false);
}

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: 'pipe' });
}

describe('every write is bounded (issue 11)', () => {
  maybe('M1: a zstd bomb that declares no size is stopped at the bound by the kernel', async () => {
    const bomb = path.join(fixtures, 'stream-bomb.zst');
    // Compressed from a pipe: the frame declares no content size, so only the running bound can stop it.
    execSync(`head -c ${512 * MiB} /dev/zero | zstd -q -c > ${bomb}`);
    expect(fs.statSync(bomb).size).toBeLessThan(100 * 1024);
    server.route('/bomb.zst', { file: bomb, lastModified: new Date(0) });
    const s = setup({ cacheSize: 32 * MiB });
    const { value: err, used } = await lowestFree(() =>
      s.cache.fetchImage(server.url('/bomb.zst'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details).toMatchObject({ measured: 'decompressed', atLeast: true, cacheSize: 32 * MiB });
    expect(err.message).toMatch(/decompressed size .* exceeds the cache's size/);
    expect(used).toBeLessThanOrEqual(33 * MiB);
    await expectNothingLeft(s);
  });

  maybe('M1: a zstd bomb that declares its size is refused before a byte is decompressed', async () => {
    const raw = path.join(fixtures, 'zeros');
    execSync(`head -c ${512 * MiB} /dev/zero > ${raw}`);
    const bomb = path.join(fixtures, 'declared-bomb.zst');
    execFileSync('zstd', ['-q', '-f', raw, '-o', bomb]);
    fs.rmSync(raw);
    server.route('/declared-bomb.zst', { file: bomb, lastModified: new Date(0) });
    const s = setup({ cacheSize: 32 * MiB });
    const { value: err, used } = await lowestFree(() =>
      s.cache.fetchImage(server.url('/declared-bomb.zst'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details).toMatchObject({ measured: 'decompressed', size: 512 * MiB, atLeast: false });
    expect(used).toBeLessThan(MiB);
    await expectNothingLeft(s);
  });

  maybe('H1: an endless body without Content-Length stops at the cache size', async () => {
    const s = setup({ cacheSize: 24 * MiB });
    const { value: err, used } = await lowestFree(() =>
      s.cache.fetchImage(endlessUrl('/endless'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details).toMatchObject({ measured: 'body', atLeast: true, limit: 24 * MiB });
    expect(err.details.size).toBeGreaterThan(24 * MiB);
    expect(used).toBeLessThanOrEqual(25 * MiB);
    await expectNothingLeft(s);
  });

  maybe('H1: an endless body on a cache larger than its disk stops before the disk is full', async () => {
    const s = setup(); // 20 GiB by default, on a 64 MiB filesystem
    const { value: err, minFree } = await lowestFree(() =>
      s.cache.fetchImage(endlessUrl('/endless'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details.measured).toBe('body');
    expect(err.details.limit).toBeLessThan(64 * MiB);
    expect(err.message).toMatch(/what its filesystem can give it/);
    expect(minFree).toBeGreaterThan(MiB);
    await expectNothingLeft(s);
  });

  maybe('X12: a Content-Length of 10 TiB is refused before a byte of its body is read', async () => {
    const s = setup();
    const gets = endlessGets;
    const { value: err, used } = await lowestFree(() =>
      s.cache.fetchImage(endlessUrl('/ten-tib'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details).toMatchObject({ measured: 'declared', size: 10 * 1024 ** 4, atLeast: false });
    // A cold miss asks with its GET: the headers are all it takes, the body is never read (the connection is
    // dropped), nothing is written.
    expect(endlessGets).toBe(gets + 1);
    expect(used).toBeLessThan(MiB);
    for (let i = 0; i < 100 && endlessOpen > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(endlessOpen).toBe(0);
    await expectNothingLeft(s);
  });

  maybe(
    'M2: a small qcow2 that converts to more than the disk holds: qemu-img is stopped in time',
    async () => {
      const raw = path.join(fixtures, 'dense.raw');
      // 320 MiB of non-zero, very compressible data: a tiny compressed qcow2, a large raw output.
      const fd = fs.openSync(raw, 'w');
      const block = Buffer.alloc(MiB, 'imagecache ');
      for (let i = 0; i < 320; i++) fs.writeSync(fd, block);
      fs.closeSync(fd);
      const qcow2 = path.join(fixtures, 'dense.qcow2');
      qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, qcow2);
      fs.rmSync(raw);
      expect(fs.statSync(qcow2).size).toBeLessThan(4 * MiB);
      server.route('/dense.qcow2', { file: qcow2, lastModified: new Date(0) });
      const s = setup({ forceRaw: true });
      const { value: err, minFree } = await lowestFree(() =>
        s.cache.fetchImage(server.url('/dense.qcow2'), s.dest('x')).catch((e) => e),
      );
      expect(err.code).toBe('IMAGE_TOO_LARGE');
      expect(err.details).toMatchObject({ measured: 'converted', atLeast: true });
      expect(minFree).toBeGreaterThan(0);
      const alive = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      expect(alive).not.toContain(s.cache.masterDir);
      await expectNothingLeft(s);
    },
  );

  maybe('M3: a 1 TiB virtual size is refused before anything is evicted', async () => {
    const huge = path.join(fixtures, 'huge.qcow2');
    qemuImg('create', '-f', 'qcow2', huge, '1T');
    server.route('/huge.qcow2', { file: huge, lastModified: new Date(0) });
    server.route('/other.img', { body: randomBytes(4 * MiB), lastModified: new Date(0) });
    const s = setup({ forceRaw: true, cacheSize: 32 * MiB });
    await s.cache.fetchImage(server.url('/good.img'), s.dest('a'));
    await s.cache.fetchImage(server.url('/other.img'), s.dest('b'));
    fs.rmSync(s.dest('a'));
    fs.rmSync(s.dest('b'));
    const before = masters(s.cache);
    expect(before).toHaveLength(2);
    const err = await s.cache.fetchImage(server.url('/huge.qcow2'), s.dest('x')).catch((e) => e);
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.details).toMatchObject({ measured: 'virtual', size: 1024 ** 4, cacheSize: 32 * MiB });
    expect(masters(s.cache)).toEqual(before);
    expect(workLeft(s.cache)).toEqual([]);
    expect(fs.readdirSync(s.destDir)).toEqual([]);
  });

  maybe("M3: the cache's size counts allocated bytes: a sparse master does not evict the rest", async () => {
    const s = setup({ cacheSize: 32 * MiB });
    await s.cache.fetchImage(server.url('/good.img'), s.dest('a'));
    fs.rmSync(s.dest('a'));
    // A 1 GiB disk with 1 MiB of data, in use.
    const sparse = '7d0d3a5e-4e1f-4b57-9a53-0f6a0c6a1d2e';
    const file = path.join(s.cache.masterDir, sparse);
    fs.writeFileSync(file, randomBytes(MiB));
    fs.truncateSync(file, 1024 * MiB);
    fs.linkSync(file, s.dest('sparse'));
    const r = await s.cache.cleanUp();
    expect(r.removed).toEqual([]);
    expect(r.totalSize).toBeLessThan(8 * MiB);
    expect(masters(s.cache)).toHaveLength(2);
  });

  maybe('a cache size of 0 keeps no unused master, and bounds an image by its disk only', async () => {
    const s = setup({ cacheSize: 0 });
    const r = await s.cache.fetchImage(server.url('/good.img'), s.dest('a'));
    expect(fs.readFileSync(s.dest('a')).equals(good)).toBe(true);
    fs.rmSync(s.dest('a'));
    await s.cache.cleanUp();
    expect(fs.existsSync(r.masterPath!)).toBe(false);
    const { value: err, minFree } = await lowestFree(() =>
      s.cache.fetchImage(endlessUrl('/endless'), s.dest('x')).catch((e) => e),
    );
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.message).toMatch(/what its filesystem can give it/);
    expect(minFree).toBeGreaterThan(MiB);
    await expectNothingLeft(s);
  });

  maybe('concurrent misses never take the same free bytes: the disk does not fill', async () => {
    const s = setup();
    await s.cache.start();
    // Each fits the disk alone, not both at once.
    const size = Math.floor((freeNow() * 0.6) / MiB) * MiB;
    const body = randomBytes(size);
    // Bodies held back a moment after their headers: both misses plan their room before either has written a
    // byte (a byte written counts as used instead of reserved, so the refused one would see less than the whole
    // size reserved).
    server.route('/twin-a.img', { body, lastModified: new Date(0), bodyDelayMs: 300 });
    server.route('/twin-b.img', { body, lastModified: new Date(0), bodyDelayMs: 300 });
    const { value: results, minFree } = await lowestFree(() =>
      Promise.allSettled([
        s.cache.fetchImage(server.url('/twin-a.img'), s.dest('a')),
        s.cache.fetchImage(server.url('/twin-b.img'), s.dest('b')),
      ]),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason.code).toBe('INSUFFICIENT_DISK_SPACE');
    expect(failed[0]!.reason.details.reserved).toBe(size);
    expect(minFree).toBeGreaterThan(MiB);
    expect(masters(s.cache)).toHaveLength(1);
    expect(workLeft(s.cache)).toEqual([]);
    expect(fs.readdirSync(s.destDir)).toHaveLength(1);
  });

  maybe(
    'M4: forceRaw on a validate: false cache inspects: a qcow2 with a backing file is refused',
    async () => {
      const backing = path.join(fixtures, 'backing.qcow2');
      qemuImg('create', '-f', 'qcow2', '-b', '/etc/hostname', '-F', 'raw', backing);
      server.route('/backing.qcow2', { file: backing, lastModified: new Date(0) });
      const s = setup({ validate: false, forceRaw: true });
      const err = await s.cache.fetchImage(server.url('/backing.qcow2'), s.dest('x')).catch((e) => e);
      expect(err.code).toBe('UNSAFE_IMAGE');
      expect(err.message).toMatch(/backing/);
      await expectNothingLeft(s);
    },
  );
});

describe('clean-up touches masters only (issue 11)', () => {
  const LOADERS = ['snponly.efi', 'undionly.kpxe', 'ipxe.efi'];

  maybe('K1: PXE loaders in a master folder are never evicted, and ls lists them as foreign', async () => {
    // The loaders and one master are over the size: clean-up evicts what it may, the master.
    const s = setup({ cacheSize: 3.5 * MiB });
    await s.cache.start();
    const old = new Date(Date.now() - 30 * DAY_MS);
    for (const f of LOADERS) {
      fs.writeFileSync(path.join(s.cache.masterDir, f), randomBytes(256 * 1024));
      fs.utimesSync(path.join(s.cache.masterDir, f), old, old);
    }
    const fetched = await s.cache.fetchImage(server.url('/good.img'), s.dest('a'));
    fs.rmSync(s.dest('a'));
    const r = await s.cache.cleanUp();
    expect(r.removed.map((x) => x.name)).toEqual([path.basename(fetched.masterPath!)]);
    expect(r.foreign.sort()).toEqual([...LOADERS].sort());
    expect(masters(s.cache)).toEqual([...LOADERS].sort());
    // They count towards the folder's size.
    expect(r.totalSize).toBeGreaterThanOrEqual(3 * 256 * 1024);
    const listed = await s.cache.list();
    expect(
      listed
        .filter((e) => e.foreign)
        .map((e) => e.name)
        .sort(),
    ).toEqual([...LOADERS].sort());
    expect(listed.every((e) => e.allocated >= 256 * 1024)).toBe(true);
  });

  maybe('coalesces post-miss clean-ups: a burst of misses runs at most two', async () => {
    const ran: string[] = [];
    const logger: Logger = {
      debug: (_o, msg) => void (msg === 'clean-up ran' && ran.push(msg)),
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    };
    const s = setup({ logger });
    for (let i = 0; i < 8; i++) server.route(`/burst${i}.img`, { body: randomBytes(64 * 1024) });
    await s.cache.start();
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => s.cache.fetchImage(server.url(`/burst${i}.img`), s.dest(`b${i}`))),
    );
    expect(masters(s.cache)).toHaveLength(8);
    expect(ran.length).toBeGreaterThanOrEqual(1);
    expect(ran.length).toBeLessThanOrEqual(3);
  });

  maybe(
    'a master another process links while clean-up removes it stays (rename before unlink)',
    async () => {
      // Another process links the master to fresh names as fast as it can (a hit on another replica); clean-up
      // runs while the master seems unused. Without the rename first, a link made between clean-up's last look
      // and its unlink left a destination whose master was gone (seen about once in 1,000 rounds here: this
      // test is a guard that catches that only now and then; the two-phase removal is argued in clean-up.ts).
      const s = setup({ cacheSize: 4096 });
      await s.cache.start();
      const master = path.join(s.cache.masterDir, '0b7c1a52-6a4e-5d5f-9e8e-1c2d3e4f5a6b');
      const links = path.join(s.base, 'links');
      fs.mkdirSync(links);
      const child = spawn(
        process.execPath,
        [
          '-e',
          `const fs = require('fs'); let i = 0;
         for (;;) { try { fs.linkSync(${JSON.stringify(master)}, ${JSON.stringify(links)} + '/d' + i++); } catch {} }`,
        ],
        { stdio: 'ignore' },
      );
      const clear = () => fs.readdirSync(links).forEach((d) => fs.unlinkSync(path.join(links, d)));
      let lost = 0;
      try {
        // 300 rounds, or 20 s on a loaded machine (the linking process competes for a core).
        const until = Date.now() + 20_000;
        for (let round = 0; round < 300 && Date.now() < until; round++) {
          clear();
          fs.writeFileSync(`${master}.new`, randomBytes(8192));
          fs.renameSync(`${master}.new`, master);
          clear();
          await s.cache.cleanUp();
          if (fs.readdirSync(links).length > 0 && !fs.existsSync(master)) lost++;
        }
      } finally {
        child.kill('SIGKILL');
      }
      expect(lost).toBe(0);
      expect(fs.readdirSync(s.cache.folder.workDir)).toEqual([]);
    },
    60_000,
  );
});

describe('crash leftovers are swept (issue 11 X6)', () => {
  const age = (p: string, ms: number) => {
    const t = new Date(Date.now() - ms);
    fs.utimesSync(p, t, t);
  };

  maybe(
    'Ironic tmp folders, stray .part files and dead work go once old; young or held work stays',
    async () => {
      const s = setup();
      await s.cache.start();
      const m = s.cache.masterDir;
      const id = 'b1946ac9-2b5e-5b8f-8d2a-4f3c0e9d1a77';
      const tmp = path.join(m, 'tmpk2j3h4g5');
      fs.mkdirSync(tmp);
      fs.writeFileSync(path.join(tmp, `${id}.part`), randomBytes(MiB));
      age(path.join(tmp, `${id}.part`), 2 * DAY_MS);
      age(tmp, 2 * DAY_MS);
      fs.writeFileSync(path.join(m, `${id}.part`), randomBytes(MiB));
      age(path.join(m, `${id}.part`), 2 * DAY_MS);
      const young = 'c0ffee00-0000-5000-8000-000000000001.part';
      fs.writeFileSync(path.join(m, young), 'x');
      const work = (name: string) => {
        const dir = path.join(s.cache.folder.workDir, `${name}.work`);
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'image'), randomBytes(MiB));
        age(path.join(dir, 'image'), 2 * DAY_MS);
        age(dir, 2 * DAY_MS);
      };
      const dead = 'd0d0d0d0-0000-5000-8000-000000000002';
      const resumed = 'e0e0e0e0-0000-5000-8000-000000000003';
      work(dead);
      work(resumed);
      // Another process (or replica) holds this master's lock: it is resuming that download.
      fs.mkdirSync(path.join(s.cache.folder.lockDir, `${resumed}.lock`));
      const r = await s.cache.cleanUp();
      expect(fs.readdirSync(m).filter((e) => !e.startsWith('.imagecache-'))).toEqual([young]);
      // One listing served the sweep and the scan: what the sweep removed is not counted.
      expect(r.foreign).toEqual([young]);
      expect(r.totalSize).toBeLessThan(MiB);
      expect(fs.readdirSync(s.cache.folder.workDir)).toEqual([`${resumed}.work`]);
    },
  );

  maybe('placement temporaries a crash left beside a destination go with the next miss there', async () => {
    const s = setup();
    const stamp = (ms: number) => (Date.now() - ms).toString(36);
    const dead = path.join(s.destDir, `.imagecache-place-${stamp(2 * DAY_MS)}-0123456789ab`);
    const live = path.join(s.destDir, `.imagecache-place-${stamp(1000)}-ba9876543210`);
    const lookalike = path.join(s.destDir, '.imagecache-place-notours');
    for (const f of [dead, live, lookalike]) {
      fs.writeFileSync(f, randomBytes(MiB));
      age(f, 2 * DAY_MS);
    }
    await s.cache.fetchImage(server.url('/good.img'), s.dest('x'));
    expect(fs.readdirSync(s.destDir).sort()).toEqual(
      [path.basename(live), path.basename(lookalike), 'x'].sort(),
    );
  });
});
