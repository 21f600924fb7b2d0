import * as fs from 'node:fs';
import * as path from 'node:path';
import { CacheRegistry, ImageCache, silentLogger, startSweeper } from '@imagecache/core';
import { InsufficientDiskSpace } from '@imagecache/errors';
import { mountTmpfs, startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { masters } from './helpers';

const MiB = 1 << 20;
let server: ImageServer;
beforeAll(async () => {
  server = await startImageServer();
});
afterAll(() => server.close());

/** A master of `size` bytes (with metadata: a file without, under a short name, is foreign and never evicted). */
function fill(cache: ImageCache, name: string, size: number): void {
  fs.writeFileSync(cache.folder.metaPath(name), '{}');
  fs.writeFileSync(path.join(cache.masterDir, name), Buffer.alloc(size, 1));
}

describe('CacheRegistry', () => {
  it('orders caches by priority, ties in registration order', () => {
    const root = tmpDir();
    const mk = (name: string, priority: number) =>
      new ImageCache({ name, priority, masterDir: path.join(root, name) });
    const reg = new CacheRegistry()
      .register(mk('tftp', 25))
      .register(mk('instance', 50))
      .register(mk('iso', 75))
      .register(mk('other', 50));
    expect(reg.caches.map((c) => c.name)).toEqual(['iso', 'instance', 'other', 'tftp']);
  });

  const fs64 = mountTmpfs(64);
  const maybe = 'skip' in fs64 ? it.skip : it;
  if ('skip' in fs64) console.log(`registry disk-space tests skipped: ${fs64.skip}`);

  maybe('frees space on the same device, highest priority first, else InsufficientDiskSpace', async () => {
    if ('skip' in fs64) return;
    const elsewhere = new ImageCache({
      name: 'elsewhere',
      priority: 100,
      masterDir: path.join(tmpDir(), 'm'),
    });
    const iso = new ImageCache({
      name: 'iso',
      priority: 75,
      masterDir: path.join(fs64.dir, 'iso'),
      cacheSize: 1e9,
    });
    const inst = new ImageCache({
      name: 'instance',
      priority: 50,
      masterDir: path.join(fs64.dir, 'inst'),
      cacheSize: 1e9,
    });
    const reg = new CacheRegistry().register(inst).register(iso).register(elsewhere);
    for (const c of [iso, inst, elsewhere]) await c.start();
    fill(elsewhere, 'x', MiB);
    fill(iso, 'i1', 20 * MiB);
    fill(inst, 'n1', 20 * MiB);
    fill(inst, 'n2', 20 * MiB);
    const dest = path.join(fs64.dir, 'dest');
    fs.mkdirSync(dest);

    server.route('/big.img', { body: Buffer.alloc(30 * MiB), lastModified: new Date(0) });
    const report = await reg.cleanUpCaches(dest, [{ href: server.url('/big.img') }]);
    expect(report.required).toBe(30 * MiB);
    expect(report.free).toBeGreaterThan(30 * MiB);
    expect(report.cleaned.map((c) => c.cache)).toEqual(['iso', 'instance']);
    expect(masters(iso)).toEqual([]);
    expect(masters(inst)).toHaveLength(1);
    expect(masters(elsewhere)).toEqual(['x']);

    server.route('/huge.img', { body: Buffer.alloc(100 * MiB), lastModified: new Date(0) });
    const err = await reg.cleanUpCaches(dest, [{ href: server.url('/huge.img') }]).catch((e) => e);
    expect(err).toBeInstanceOf(InsufficientDiskSpace);
    expect(err.code).toBe('INSUFFICIENT_DISK_SPACE');
    expect(err.required).toBe(100 * MiB);
    expect(err.path).toBe(dest);
    expect(err.free).toBeLessThan(100 * MiB);
  });

  afterAll(() => {
    if (!('skip' in fs64)) fs64.unmount();
  });
});

describe('startSweeper', () => {
  it('cleans every registered cache periodically, and stops', async () => {
    const root = tmpDir();
    const a = new ImageCache({ name: 'a', masterDir: path.join(root, 'a'), cacheSize: 0 });
    const b = new ImageCache({ name: 'b', masterDir: path.join(root, 'b'), cacheSize: 0 });
    const reg = new CacheRegistry().register(a).register(b);
    for (const c of [a, b]) {
      await c.start();
      fill(c, 'old', 10);
    }
    const stop = startSweeper(reg, 1, silentLogger);
    try {
      for (let i = 0; i < 40 && (masters(a).length || masters(b).length); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(masters(a)).toEqual([]);
      expect(masters(b)).toEqual([]);
    } finally {
      stop();
    }
    fill(a, 'later', 10);
    await new Promise((r) => setTimeout(r, 1300));
    expect(masters(a)).toEqual(['later']);
  });
});
