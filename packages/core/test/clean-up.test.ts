import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { masters, newCache } from './helpers';

const META_DIR = '.imagecache-meta';

const DAY = 24 * 3600;
/** One filesystem block: sizes count allocated bytes. */
const K = 4096;

/**
 * Writes a master of `size` bytes last used `ageSeconds` ago (mtime, atime and ctime can't be set: ctime is now),
 * with metadata (which makes a short test name a master: a file without is foreign and never evicted).
 */
function master(dir: string, name: string, size: number, ageSeconds: number): string {
  fs.mkdirSync(path.join(dir, META_DIR), { recursive: true });
  fs.writeFileSync(path.join(dir, META_DIR, name + '.json'), '{}');
  const file = path.join(dir, name);
  fs.writeFileSync(file, randomBytes(size));
  const t = new Date(Date.now() - ageSeconds * 1000);
  fs.utimesSync(file, t, t);
  return file;
}

describe('cleanUp', () => {
  it('evicts by size oldest first, never a master in use', async () => {
    const { cache, root } = newCache({ cacheSize: 3 * K, cacheTtl: 7 * DAY });
    await cache.start();
    const m = cache.masterDir;
    master(m, 'a', K, 400);
    master(m, 'b', K, 300);
    const inUse = master(m, 'c', K, 500);
    fs.linkSync(inUse, path.join(root, 'dest', 'c'));
    master(m, 'd', K, 100);
    master(m, 'e', K, 200);
    const r = await cache.cleanUp();
    expect(r.removed.map((x) => x.name)).toEqual(['a', 'b']);
    expect(r.removed.every((x) => x.reason === 'size')).toBe(true);
    expect(masters(cache)).toEqual(['c', 'd', 'e']);
    expect(r.totalSize).toBe(3 * K);
  });

  it('frees an amount even under the size limit, and says what it could not free', async () => {
    const { cache, root } = newCache({ cacheSize: 1e9 });
    await cache.start();
    master(cache.masterDir, 'a', K, 30);
    master(cache.masterDir, 'b', K, 20);
    fs.linkSync(master(cache.masterDir, 'c', 5 * K, 10), path.join(root, 'dest', 'c'));
    const r = await cache.cleanUp(1.5 * K);
    expect(r.removed.map((x) => x.name)).toEqual(['a', 'b']);
    expect(r.freed).toBe(2 * K);
    expect(r.stillRequired).toBe(0);
    const r2 = await cache.cleanUp(K);
    expect(r2.removed).toEqual([]);
    expect(r2.stillRequired).toBe(K);
    expect(masters(cache)).toEqual(['c']);
  });

  it('skips files, folders and links that are not masters, and work in progress', async () => {
    const { cache } = newCache({ cacheSize: 0 });
    await cache.start();
    fs.mkdirSync(path.join(cache.masterDir, 'a-folder'));
    fs.symlinkSync('/etc/hostname', path.join(cache.masterDir, 'a-link'));
    const r = await cache.cleanUp();
    expect(r.removed).toEqual([]);
    expect(fs.existsSync(path.join(cache.masterDir, 'a-link'))).toBe(true);
  });

  it('skips a master whose fetch holds the lock', async () => {
    const { cache } = newCache({ cacheSize: 0 });
    await cache.start();
    master(cache.masterDir, 'busy', 10, 10);
    fs.mkdirSync(path.join(cache.folder.lockDir, 'busy.lock'));
    expect((await cache.cleanUp()).removed).toEqual([]);
    fs.rmdirSync(path.join(cache.folder.lockDir, 'busy.lock'));
    expect((await cache.cleanUp()).removed.map((x) => x.name)).toEqual(['busy']);
  });

  it('sweeps work left by a crashed process once too old to continue, never live work', async () => {
    const { cache } = newCache();
    await cache.start();
    const work = (entry: string, ageSeconds: number) => {
      const dir = path.join(cache.folder.workDir, entry);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'image'), 'partial');
      const t = new Date(Date.now() - ageSeconds * 1000);
      fs.utimesSync(path.join(dir, 'image'), t, t);
      fs.utimesSync(dir, t, t);
    };
    work('dead.work', 2 * 3600);
    work('young.work', 60);
    work('live.work', 2 * 3600);
    work('stray', 0);
    fs.mkdirSync(path.join(cache.folder.lockDir, 'live.lock'));
    await cache.cleanUp();
    expect(fs.readdirSync(cache.folder.workDir).sort()).toEqual(['live.work', 'young.work']);
  });

  it('runs one clean-up at a time per folder', async () => {
    const { cache } = newCache({ cacheSize: 0 });
    await cache.start();
    for (let i = 0; i < 50; i++) master(cache.masterDir, `m${i}`, 10, i);
    const results = await Promise.all(Array.from({ length: 5 }, () => cache.cleanUp()));
    expect(results.reduce((n, r) => n + r.removed.length, 0)).toBe(50);
    expect(masters(cache)).toEqual([]);
  });
});

describe('cleanUp by TTL', () => {
  it('removes masters unused for longer than the TTL, oldest first, and stops once the amount is freed', async () => {
    const { cache } = newCache({ cacheTtl: 1, cacheSize: 1e9 });
    await cache.start();
    for (const n of ['old1', 'old2', 'old3']) {
      master(cache.masterDir, n, K, 0);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 1100));
    master(cache.masterDir, 'young', K, 0);
    const partial = await cache.cleanUp(1.5 * K);
    expect(partial.removed.map((x) => `${x.name}:${x.reason}`)).toEqual(['old1:ttl', 'old2:ttl']);
    const rest = await cache.cleanUp();
    expect(rest.removed.map((x) => x.name)).toEqual(['old3']);
    expect(masters(cache)).toEqual(['young']);
  });
});
