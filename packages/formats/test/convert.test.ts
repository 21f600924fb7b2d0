// convertToRaw with the real qemu-img, and the hint that keeps an image about to be read back in the page cache.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertedByName, convertToRaw, readBackAfterDownload, ZSTD_MAGIC } from '@imagecache/formats';
import { tmpDir } from '@imagecache/testing';
import { qemuCreate, requireTool, run } from './helpers';

const MiB = 1024 * 1024;
let dir: string;
let qcow2: string;
/** The bytes qemu-img's own default conversion gives. */
let expected: string;

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const cached = (file: string) =>
  Number(run('fincore', ['--bytes', '--raw', '--noheadings', '-o', 'RES', file]));

beforeAll(() => {
  requireTool('qemu-img', 'qemu-utils');
  requireTool('qemu-io', 'qemu-utils');
  dir = tmpDir('formats-convert-');
  qcow2 = qemuCreate(path.join(dir, 'disk.qcow2'), 'qcow2', '64M');
  // 24 MiB of data in three runs, the rest holes
  for (const [at, len, pattern] of [
    [0, 8, 0x11],
    [20, 8, 0x22],
    [56, 8, 0x33],
  ])
    run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} ${at}M ${len}M`, qcow2]);
  const plain = path.join(dir, 'plain.raw');
  run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, plain]);
  expected = sha(plain);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('convertToRaw', () => {
  it('writes the raw image straight to the disk: the same bytes, sparse, none of them left in the page cache', async () => {
    const out = path.join(dir, 'direct.raw');
    await convertToRaw(qcow2, out, { sourceFormat: 'qcow2' });
    expect(cached(out)).toBeLessThan(MiB);
    expect(fs.statSync(out).size).toBe(64 * MiB);
    expect(fs.statSync(out).blocks * 512).toBeLessThan(32 * MiB);
    expect(sha(out)).toBe(expected);
  });

  it('writes the raw image through the page cache when not asked to go straight to the disk', async () => {
    const out = path.join(dir, 'buffered-asked.raw');
    await convertToRaw(qcow2, out, { sourceFormat: 'qcow2', direct: false });
    expect(cached(out)).toBeGreaterThanOrEqual(24 * MiB);
    expect(sha(out)).toBe(expected);
  });

  it('converts through the page cache where the output refuses O_DIRECT', async () => {
    // A qemu-img that answers `-t none` as one on a filesystem without O_DIRECT does; the real one otherwise.
    const log = path.join(dir, 'calls.log');
    const wrapper = path.join(dir, 'qemu-img-no-direct');
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh\necho "$*" >> ${log}\ncase " $* " in *" -t none "*) echo "qemu-img: Could not open 'x': Invalid argument" >&2; exit 1;; esac\nexec qemu-img "$@"\n`,
      { mode: 0o755 },
    );
    const out = path.join(dir, 'buffered.raw');
    await convertToRaw(qcow2, out, { sourceFormat: 'qcow2', qemuImg: wrapper, memoryCap: 0 });
    const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(calls).toHaveLength(2);
    expect(calls[0]).toContain('-t none');
    expect(calls[1]).not.toContain('-t none');
    expect(sha(out)).toBe(expected);
  });
});

describe('readBackAfterDownload', () => {
  const head = (file: string) => fs.readFileSync(file).subarray(0, 4096);

  it('says a qcow2 image is read back when it is to be converted, a raw one never', () => {
    expect(readBackAfterDownload(head(qcow2), { forceRaw: true, zstd: true })).toBe(true);
    expect(readBackAfterDownload(head(qcow2), { forceRaw: false, zstd: true })).toBe(false);
    const raw = Buffer.alloc(4096, 0x11);
    expect(readBackAfterDownload(raw, { forceRaw: true, zstd: true })).toBe(false);
  });

  it('says a zstd frame is read back when zstd images are decompressed', () => {
    const zst = Buffer.concat([ZSTD_MAGIC, Buffer.alloc(100)]);
    expect(readBackAfterDownload(zst, { forceRaw: false, zstd: true })).toBe(true);
    expect(readBackAfterDownload(zst, { forceRaw: false, zstd: false })).toBe(false);
  });

  it('knows from an announced format alone what forceRaw converts', () => {
    expect(convertedByName('qcow2', true)).toBe(true);
    expect(convertedByName('vmdk', true)).toBe(true);
    expect(convertedByName('qcow2', false)).toBe(false);
    for (const kept of ['raw', 'gpt', 'iso', 'aki', 'ari', undefined])
      expect(convertedByName(kept, true)).toBe(false);
  });
});
