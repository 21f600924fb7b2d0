// The inspector's contract beyond formats: inputs, errors, cancellation, bounded reads.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { ImageCacheError, InvalidImage, OperationAborted } from '@imagecache/errors';
import { inspectFormat, MAX_BYTES_READ } from '@imagecache/formats';
import { tmpDir } from '@imagecache/testing';
import { MemoryFile } from './helpers';

let dir: string;
beforeAll(() => (dir = tmpDir('formats-inspect-')));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('inspectFormat', () => {
  it('reports an empty file as raw of size 0', async () => {
    const p = path.join(dir, 'empty');
    fs.writeFileSync(p, '');
    expect(await inspectFormat(p)).toMatchObject({
      format: 'raw',
      virtualSize: 0,
      actualSize: 0,
      safe: true,
      unsafeReasons: [],
    });
  });

  it('reads a 1 GiB sparse raw file in a few blocks and reports its size and allocation', async () => {
    const p = path.join(dir, 'sparse.raw');
    fs.writeFileSync(p, '');
    fs.truncateSync(p, 1024 ** 3);
    const r = await inspectFormat(p);
    expect(r).toMatchObject({ format: 'raw', virtualSize: 1024 ** 3, actualSize: 1024 ** 3, safe: true });
    expect(r.details?.bytesRead).toBeLessThanOrEqual(256 * 1024);
    expect(r.details?.allocatedBytes).toBeLessThan(1024 ** 2);
  });

  it('accepts an open FileHandle and leaves it open', async () => {
    const p = path.join(dir, 'fh.raw');
    fs.writeFileSync(p, Buffer.alloc(4096, 1));
    const fh = await open(p, 'r');
    try {
      expect((await inspectFormat(fh)).format).toBe('raw');
      expect((await fh.stat()).size).toBe(4096); // still usable
    } finally {
      await fh.close();
    }
  });

  it('refuses what is not a regular file, without hanging on a FIFO', async () => {
    await expect(inspectFormat(dir)).rejects.toBeInstanceOf(InvalidImage);
    await expect(inspectFormat(path.join(dir, 'missing'))).rejects.toThrow(/cannot open the image: ENOENT/);
    const fifo = path.join(dir, 'fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0) {
      await expect(inspectFormat(fifo)).rejects.toThrow(/not a regular file/);
    }
    await expect(inspectFormat('/dev/zero')).rejects.toBeInstanceOf(InvalidImage);
  });

  it('honours an AbortSignal', async () => {
    const p = path.join(dir, 'abort.raw');
    fs.writeFileSync(p, Buffer.alloc(4096));
    const ac = new AbortController();
    ac.abort();
    await expect(inspectFormat(p, { signal: ac.signal })).rejects.toBeInstanceOf(OperationAborted);
    // Aborted between reads.
    const mem = new MemoryFile(Buffer.alloc(MAX_BYTES_READ));
    const ac2 = new AbortController();
    const h = mem.handle();
    const read = h.read.bind(h);
    (h as unknown as { read: typeof read }).read = ((...args: Parameters<typeof read>) => {
      ac2.abort();
      return read(...args);
    }) as typeof read;
    await expect(inspectFormat(h, { signal: ac2.signal })).rejects.toBeInstanceOf(OperationAborted);
  });

  it('turns read errors into InvalidImage', async () => {
    const mem = new MemoryFile(Buffer.alloc(1024));
    const h = mem.handle();
    (h as unknown as { read: () => Promise<never> }).read = async () => {
      throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    };
    const err = await inspectFormat(h).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidImage);
    expect(err).toBeInstanceOf(ImageCacheError);
    expect((err as Error).message).toMatch(/cannot read the image: EIO/);
  });

  it('copes with a file that shrinks under it (short reads)', async () => {
    const mem = new MemoryFile(Buffer.alloc(1000), 10 * 1024 * 1024); // claims 10 MiB, holds 1000 bytes
    const r = await inspectFormat(mem.handle());
    expect(r.format).toBe('raw');
  });
});
