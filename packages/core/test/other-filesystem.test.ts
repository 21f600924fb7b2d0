import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageCache } from '@imagecache/core';
import { mountTmpfs, startImageServer, type ImageServer } from '@imagecache/testing';
import { masters, newCache, workLeft } from './helpers';

const data = randomBytes(2 << 20);
let server: ImageServer;
const small = mountTmpfs(16);
const other = mountTmpfs(16);
const skip = 'skip' in small ? small.skip : 'skip' in other ? other.skip : undefined;
if (skip) console.log(`other-filesystem tests skipped: ${skip}`);
const maybe = skip ? it.skip : it;

beforeAll(async () => {
  server = await startImageServer();
  server.route('/disk.img', { body: data, lastModified: new Date(0) });
  server.route('/big.img', { body: Buffer.alloc(20 << 20, 7), lastModified: new Date(0) });
});
afterAll(async () => {
  await server.close();
  if (!('skip' in small)) small.unmount();
  if (!('skip' in other)) other.unmount();
});

describe('a destination on another filesystem', () => {
  maybe('is copied on the miss and the hit path, and a good copy is not copied again', async () => {
    if ('skip' in other) return;
    const { cache } = newCache();
    const dest = path.join(other.dir, 'a.img');
    const miss = await cache.fetchImage(server.url('/disk.img'), dest);
    expect(miss).toMatchObject({ cacheHit: false, placedBy: 'copy' });
    expect(fs.readFileSync(dest).equals(data)).toBe(true);
    expect(fs.statSync(dest).mtimeMs).toBeCloseTo(fs.statSync(miss.masterPath!).mtimeMs, -1);
    const hit = await cache.fetchImage(server.url('/disk.img'), dest);
    expect(hit).toMatchObject({ cacheHit: true, placedBy: 'already' });
    fs.writeFileSync(dest, 'tampered');
    const again = await cache.fetchImage(server.url('/disk.img'), dest);
    expect(again).toMatchObject({ cacheHit: true, placedBy: 'copy' });
    expect(fs.readFileSync(dest).equals(data)).toBe(true);
    expect(fs.readdirSync(other.dir)).toEqual(['a.img']);
  });
});

describe('a full disk', () => {
  maybe(
    'refuses an image larger than the filesystem can hold before writing, and leaves the cache as it was',
    async () => {
      if ('skip' in small) return;
      const { dest } = newCache();
      const cache = new ImageCache({
        masterDir: path.join(small.dir, 'master'),
        forceRaw: false,
        retryDelayMs: 10,
      });
      const err = await cache.fetchImage(server.url('/big.img'), dest('big')).catch((e) => e);
      expect(err.code).toBe('IMAGE_TOO_LARGE');
      expect(err.details).toMatchObject({ measured: 'declared', size: 20 << 20 });
      expect(err.details.limit).toBeLessThan(16 << 20);
      expect(masters(cache)).toEqual([]);
      expect(workLeft(cache)).toEqual([]);
      expect(fs.existsSync(dest('big'))).toBe(false);
    },
  );
});
