import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { BlockWriter } from '../src/block-writer';
import { allocBlocks } from '../src/block-memory';
import { newCache, workLeft } from './helpers';

/*
 * A big image (announced over 64 MiB) is written straight to the disk (O_DIRECT): what the tests can see is its
 * bytes, and that they are not in the page cache afterwards (fincore, util-linux), where a small image's are.
 */

const MiB = 1 << 20;
const big = randomBytes(72 * MiB + 123); // a tail shorter than a page
const bigSha = createHash('sha256').update(big).digest('hex');
const past = new Date(Date.now() - 3600_000);
let server: ImageServer;

/** Bytes of `file` in the page cache. */
function cached(file: string): number {
  return Number(
    execFileSync('fincore', ['--bytes', '--raw', '--noheadings', '-o', 'RES', file], { encoding: 'utf8' }),
  );
}

function sameBytes(file: string, sha: string): boolean {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex') === sha;
}

beforeEach(async () => {
  server = await startImageServer();
});
afterEach(() => server.close());

describe('writing a download', () => {
  it('writes a big image straight to the disk, every byte right, and leaves a small one in the page cache', async () => {
    const { cache, dest } = newCache();
    server.route('/big.img', { body: big, lastModified: past });
    const small = randomBytes(3 * MiB);
    server.route('/small.img', { body: small, lastModified: past });

    const r = await cache.fetchImage(server.url('/big.img'), dest('big'), { expectedChecksum: bigSha });
    expect(r.size).toBe(big.length);
    // Only what was read back (the format's headers, with the kernel's read-ahead) or written through the page
    // cache (the tail) is there: 1.5 MiB of the 72 here.
    expect(cached(r.masterPath!)).toBeLessThan(4 * MiB);
    expect(sameBytes(dest('big'), bigSha)).toBe(true);

    const s = await cache.fetchImage(server.url('/small.img'), dest('small'));
    expect(cached(s.masterPath!)).toBe(small.length);
    expect(workLeft(cache)).toEqual([]);
  });

  it('writes a big image through the page cache when directIo is off', async () => {
    const { cache, dest } = newCache({ directIo: false });
    server.route('/big.img', { body: big, lastModified: past });
    const r = await cache.fetchImage(server.url('/big.img'), dest('big'), { expectedChecksum: bigSha });
    expect(cached(r.masterPath!)).toBeGreaterThanOrEqual(big.length); // whole pages
  });

  it('continues a big download cut at an odd length, every byte right', async () => {
    const { cache, dest } = newCache({ downloadRetries: 30 });
    server.route('/cut.img', {
      body: big,
      lastModified: past,
      etag: '"c1"',
      ranges: true,
      truncateAt: 20 * MiB + 777,
    });
    const r = await cache.fetchImage(server.url('/cut.img'), dest('a'), { expectedChecksum: bigSha });
    const gets = server.requests.filter((q) => q.method === 'GET');
    expect(gets.length).toBeGreaterThanOrEqual(2);
    // At least one attempt resumed at a length that is no multiple of a page (its first block is short, the next
    // ones start on a page again: straight to the disk).
    const resumedAt = gets.slice(1).map((g) => Number(/^bytes=(\d+)-$/.exec(String(g.headers.range))![1]));
    expect(resumedAt.some((n) => n % 4096 !== 0)).toBe(true);
    expect(r.bytesDownloaded).toBe(big.length);
    expect(cached(r.masterPath!)).toBeLessThan(8 * MiB);
    expect(sameBytes(dest('a'), bigSha)).toBe(true);
  });
});

describe('BlockWriter', () => {
  it('writes what O_DIRECT refuses through the page cache, from that block on', async () => {
    const file = path.join(tmpDir('imagecache-writer-'), 'image');
    const fh = await fs.promises.open(file, 'w');
    const writer = await BlockWriter.open(fh, file, 'direct');
    expect(writer.isDirect).toBe(true);
    const { blocks, aligned } = allocBlocks(2, MiB, true);
    expect(aligned).toBe(true);
    const [a, b] = [blocks[0]!.fill(1), blocks[1]!.fill(2)];
    await writer.write(a, MiB, 0, aligned);
    expect(writer.isDirect).toBe(true);
    // Memory 8 bytes past a page, claimed aligned: the kernel refuses it (EINVAL), the bytes still land.
    await writer.write(b.subarray(8), 3 * 4096, MiB, true);
    expect(writer.isDirect).toBe(false);
    await writer.write(a, 100, MiB + 3 * 4096, aligned);
    await writer.close();
    await fh.close();
    const bytes = fs.readFileSync(file);
    expect(bytes.length).toBe(MiB + 3 * 4096 + 100);
    expect(bytes.subarray(0, MiB).every((x) => x === 1)).toBe(true);
    expect(bytes.subarray(MiB, MiB + 3 * 4096).every((x) => x === 2)).toBe(true);
    expect(bytes.subarray(MiB + 3 * 4096).every((x) => x === 1)).toBe(true);
  });

  it('keeps an image the next stage reads back in the page cache, decided on its first block', async () => {
    const file = path.join(tmpDir('imagecache-writer-'), 'image');
    const fh = await fs.promises.open(file, 'w');
    const heads: number[] = [];
    const writer = await BlockWriter.open(
      fh,
      file,
      'direct',
      (head) => (heads.push(head[0]!), head[0] === 0x51),
    );
    const { blocks, aligned } = allocBlocks(2, MiB, true);
    const [a, b] = [blocks[0]!.fill(0x51), blocks[1]!.fill(2)];
    await writer.write(a, MiB, 0, aligned);
    await writer.write(b, MiB, MiB, aligned);
    expect(writer.isDirect).toBe(false);
    expect(heads).toEqual([0x51]); // asked once, about the first block
    await writer.close();
    await fh.close();
    expect(cached(file)).toBe(2 * MiB);
  });

  it('writes through the page cache when not asked for O_DIRECT', async () => {
    const file = path.join(tmpDir('imagecache-writer-'), 'image');
    const fh = await fs.promises.open(file, 'w');
    const writer = await BlockWriter.open(fh, file, 'buffered');
    expect(writer.isDirect).toBe(false);
    await writer.write(Buffer.alloc(8192, 5), 8192, 0, true);
    await writer.close();
    await fh.close();
    expect(cached(file)).toBe(8192);
  });

  it('writes inline on the calling thread: a block is in the file when write() returns, before any await', async () => {
    const file = path.join(tmpDir('imagecache-writer-'), 'image');
    const fh = await fs.promises.open(file, 'w');
    const writer = await BlockWriter.open(fh, file, 'inline');
    expect(writer.isDirect).toBe(false);
    const block = randomBytes(256 * 1024);
    const pending = writer.write(block, 100_000, 4096, false);
    // Nothing has had a turn of the event loop: a write through libuv's pool could not have landed yet.
    expect(fs.readFileSync(file).subarray(4096).equals(block.subarray(0, 100_000))).toBe(true);
    await pending;
    await writer.close();
    await fh.close();
    expect(fs.statSync(file).size).toBe(104_096);
  });
});
