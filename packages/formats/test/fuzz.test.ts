// Fuzz: real fixtures with random bytes flipped, truncated at every header-field boundary and at
// random lengths, plus random headers. The inspector must always resolve to a coherent report
// (never throw, let alone a RangeError), within a time bound, reading a bounded number of bytes.
// Deterministic: a seeded PRNG; runs in memory (a FileHandle stand-in) to do thousands of cases.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IMAGE_FORMATS, inspectFormat, type FormatReport } from '@imagecache/formats';
import { tmpDir } from '@imagecache/testing';
import { MemoryFile, mbr, prng, pte, qemuCreate, requireTool, run } from './helpers';

const MiB = 1024 * 1024;
const READ_BOUND = 3 * MiB; // "a few MiB"; the largest legitimate read is a 2 MiB qcow2 cluster
const CALL_TIMEOUT_MS = 2000;
const SEED = 0x1ca9e;

let dir: string;
const fixtures: Array<{ name: string; data: Buffer }> = [];
const stats = { calls: 0, maxRead: 0, formats: new Map<string, number>(), unsafe: 0 };

beforeAll(() => {
  requireTool('qemu-img', 'qemu-utils');
  requireTool('genisoimage', 'genisoimage');
  requireTool('xorriso', 'xorriso');
  requireTool('sgdisk', 'gdisk');
  requireTool('cryptsetup', 'cryptsetup-bin');
  dir = tmpDir('formats-fuzz-');
  const p = (n: string) => path.join(dir, n);
  const add = (name: string, file: string) => fixtures.push({ name, data: fs.readFileSync(file) });
  add('qcow2', qemuCreate(p('a.qcow2'), 'qcow2', '64M'));
  add('qcow2-v2', qemuCreate(p('b.qcow2'), 'qcow2', '64M', ['compat=0.10']));
  add(
    'qcow2-backing',
    qemuCreate(p('c.qcow2'), 'qcow2', '64M', ['backing_file=a.qcow2', 'backing_fmt=qcow2']),
  );
  add('qcow2-datafile', qemuCreate(p('d.qcow2'), 'qcow2', '64M', ['data_file=d.raw']));
  add('qed', qemuCreate(p('a.qed'), 'qed', '64M'));
  add('vhd', qemuCreate(p('a.vhd'), 'vpc', '64M'));
  add('vhd-fixed', qemuCreate(p('b.vhd'), 'vpc', '2M', ['subformat=fixed']));
  add('vhdx', qemuCreate(p('a.vhdx'), 'vhdx', '64M'));
  add('vmdk-sparse', qemuCreate(p('a.vmdk'), 'vmdk', '64M'));
  add('vmdk-flat-descriptor', qemuCreate(p('b.vmdk'), 'vmdk', '64M', ['subformat=monolithicFlat']));
  const src = p('src.raw');
  fs.writeFileSync(src, Buffer.alloc(MiB, 0x42));
  run('qemu-img', [
    'convert',
    '-f',
    'raw',
    '-O',
    'vmdk',
    '-o',
    'subformat=streamOptimized',
    src,
    p('c.vmdk'),
  ]);
  const so = fs.readFileSync(p('c.vmdk'));
  const footer = Buffer.from(so.subarray(0, 512));
  so.writeBigUInt64LE(0xffffffffffffffffn, 56);
  const marker = (t: number) => {
    const m = Buffer.alloc(512);
    m.writeUInt32LE(t, 12);
    return m;
  };
  fixtures.push({ name: 'vmdk-stream-footer', data: Buffer.concat([so, marker(3), footer, marker(0)]) });
  add('vdi', qemuCreate(p('a.vdi'), 'vdi', '64M'));
  // cryptsetup with few PBKDF iterations is fast; qemu-img's luks benchmarks its PBKDF for seconds.
  fs.writeFileSync(p('a.luks'), '');
  fs.truncateSync(p('a.luks'), 3 * MiB);
  run(
    'cryptsetup',
    ['luksFormat', '--type', 'luks1', '--batch-mode', '--pbkdf-force-iterations', '1000', p('a.luks'), '-'],
    { input: 'x' },
  );
  add('luks', p('a.luks'));
  fs.writeFileSync(p('b.luks'), '');
  fs.truncateSync(p('b.luks'), 17 * MiB);
  run(
    'cryptsetup',
    [
      'luksFormat',
      '--type',
      'luks2',
      '--batch-mode',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      p('b.luks'),
      '-',
    ],
    { input: 'x' },
  );
  add('luks2', p('b.luks'));
  add('qcow2-2M-clusters', qemuCreate(p('f.qcow2'), 'qcow2', '1G', ['cluster_size=2M']));
  fs.mkdirSync(p('iso'));
  fs.writeFileSync(p('iso/x.txt'), 'x');
  run('genisoimage', ['-quiet', '-udf', '-o', p('a.iso'), p('iso')]);
  add('iso', p('a.iso'));
  fs.writeFileSync(p('iso/efi.img'), Buffer.alloc(64 * 1024));
  run('xorriso', [
    '-as',
    'mkisofs',
    '-quiet',
    '-o',
    p('b.iso'),
    '-append_partition',
    '2',
    '0xef',
    p('iso/efi.img'),
    '-appended_part_as_gpt',
    p('iso'),
  ]);
  add('iso-hybrid-gpt', p('b.iso'));
  fs.writeFileSync(p('a.gpt'), '');
  fs.truncateSync(p('a.gpt'), 4 * MiB);
  run('sgdisk', ['-n', '1:2048:0', p('a.gpt')]);
  add('gpt', p('a.gpt'));
  const m = Buffer.alloc(MiB);
  mbr([pte(0x80, 0x83, 2048, 2048), pte(0, 0x82, 4096, 1024)]).copy(m);
  fixtures.push({ name: 'mbr', data: m });
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  const formats = [...stats.formats].map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(
    `fuzz: ${stats.calls} inspections, max bytes read ${stats.maxRead}, unsafe ${stats.unsafe}; ${formats}`,
  );
});

/** One inspection of in-memory bytes, with every invariant checked. */
async function check(data: Buffer, size = data.length, what = ''): Promise<FormatReport> {
  const mem = new MemoryFile(data, size);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(
      () => reject(new Error(`inspection hung (> ${CALL_TIMEOUT_MS} ms): ${what}`)),
      CALL_TIMEOUT_MS,
    );
  });
  let report: FormatReport;
  try {
    report = await Promise.race([inspectFormat(mem.handle()), timeout]);
  } catch (err) {
    throw new Error(`inspection threw on ${what}: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    clearTimeout(timer);
  }
  stats.calls++;
  stats.maxRead = Math.max(stats.maxRead, mem.served);
  stats.formats.set(report.format, (stats.formats.get(report.format) ?? 0) + 1);
  if (!report.safe) stats.unsafe++;
  const ok =
    IMAGE_FORMATS.includes(report.format) &&
    Number.isSafeInteger(report.virtualSize) &&
    report.virtualSize >= 0 &&
    report.actualSize === size &&
    report.safe === (report.unsafeReasons.length === 0) &&
    report.unsafeReasons.every((r) => typeof r === 'string' && r.length < 400) &&
    report.details?.bytesRead === mem.served &&
    mem.served <= READ_BOUND &&
    report.details?.parseError === undefined; // a parser bug caught by the guard still fails the fuzz
  if (!ok) throw new Error(`bad report on ${what}: ${JSON.stringify(report)} (served ${mem.served})`);
  return report;
}

/** Offsets where the detectors look, so mutations land on header fields often. */
function hotRanges(data: Buffer): Array<[number, number]> {
  const r: Array<[number, number]> = [
    [0, 4096],
    [0x8000, 0xa000],
    [Math.max(0, data.length - 2048), data.length],
    [0x30000, 0x30000 + 4096],
  ];
  const meta = data.indexOf('metadata', 0x30000, 'latin1');
  if (meta > 0) r.push([meta, meta + 4096]);
  return r.filter(([a, b]) => b > a && a < data.length).map(([a, b]) => [a, Math.min(b, data.length)]);
}

const MAGICS = [
  'QFI\xfb',
  'QED\0',
  'vhdxfile',
  'KDMV',
  'COWD',
  'conectix',
  'LUKS\xba\xbe',
  '# Disk DescriptorFile\nversion=1\n',
];

describe('fuzz', () => {
  it('survives thousands of byte flips of every real fixture', async () => {
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    for (const { name, data } of fixtures) {
      const hot = hotRanges(data);
      const span = Math.min(data.length, MiB);
      // Mutate one copy in place and undo after each case (no per-case copy of the fixture).
      const buf = Buffer.from(data);
      const undo: Array<[number, Buffer]> = [];
      const touch = (at: number, len: number) => undo.push([at, Buffer.from(buf.subarray(at, at + len))]);
      for (let iter = 0; iter < 250; iter++) {
        const flips = 1 + int(12);
        for (let k = 0; k < flips; k++) {
          let at: number;
          if (rnd() < 0.7) {
            const [a, b] = hot[int(hot.length)] as [number, number];
            at = a + int(b - a);
          } else at = int(span);
          const mode = int(6);
          if (mode === 3 && at + 4 <= buf.length) {
            touch(at & ~3, 4);
            buf.writeUInt32LE(int(2 ** 32), at & ~3);
          } else if (mode === 4 && at + 8 <= buf.length) {
            touch(at & ~7, 8);
            buf.writeBigUInt64BE(
              [0n, 0xffffffffffffffffn, 1n << 63n, BigInt(int(2 ** 32))][int(4)]!,
              at & ~7,
            );
          } else if (mode === 5 && rnd() < 0.2) {
            const magic = MAGICS[int(MAGICS.length)]!;
            touch(0, Math.min(magic.length, buf.length));
            buf.write(magic, 0, 'latin1');
          } else {
            touch(at, 1);
            if (mode === 0) buf[at] = int(256);
            else if (mode === 1) buf[at]! ^= 1 << int(8);
            else buf[at] = rnd() < 0.5 ? 0 : 0xff;
          }
        }
        await check(buf, buf.length, `${name} flip #${iter}`);
        for (const [at, old] of undo.reverse()) old.copy(buf, at);
        undo.length = 0;
      }
      expect(buf.equals(data)).toBe(true);
    }
  });

  it('survives every truncation in the headers and many random ones', async () => {
    const rnd = prng(SEED + 1);
    for (const { name, data } of fixtures) {
      const lengths = new Set<number>();
      for (let l = 0; l <= 1100; l++) lengths.add(l); // every field of every 512-byte header
      for (let l = 1100; l <= 8192; l += 8) lengths.add(l);
      for (let l = 0x8000; l <= 0xa000; l += 16) lengths.add(l); // ISO descriptors
      for (let l = 0x30000; l <= 0x30000 + 1024; l += 8) lengths.add(l); // VHDX region table
      const meta = data.indexOf('metadata', 0x30000, 'latin1');
      if (meta > 0) for (let l = meta; l <= meta + 1024; l += 8) lengths.add(l);
      for (let i = 0; i < 150; i++) lengths.add(Math.floor(rnd() * data.length));
      for (let i = 0; i <= 1536; i += 8) lengths.add(Math.max(0, data.length - i)); // footers
      for (const l of lengths) {
        if (l > data.length) continue;
        await check(data.subarray(0, l), l, `${name} truncated at ${l}`);
      }
    }
  });

  it('survives random headers, with and without a known magic', async () => {
    const rnd = prng(SEED + 2);
    const int = (n: number) => Math.floor(rnd() * n);
    // A pool of seeded random bytes; each case is a random window of it.
    const pool = Buffer.alloc(MiB);
    for (let j = 0; j < pool.length; j += 4) pool.writeUInt32LE(int(2 ** 32), j);
    for (let i = 0; i < 3000; i++) {
      const len = [int(600), int(70000), int(300000)][int(3)]!;
      const start = int(pool.length - len);
      const b = Buffer.from(pool.subarray(start, start + len));
      if (len >= 4 && rnd() < 0.7) b.write(MAGICS[int(MAGICS.length)]!, 0, 'latin1');
      if (len >= 512 && rnd() < 0.3) {
        b[510] = 0x55;
        b[511] = 0xaa;
      }
      if (len > 0x8006 && rnd() < 0.2) b.write('\x01CD001', 0x8000, 'latin1');
      // Claimed sizes far beyond the bytes held: reads past the data come back short.
      const size = rnd() < 0.2 ? len + int(2 ** 40) : len;
      await check(b, size, `random #${i} (${len} bytes, size ${size})`);
    }
  });
});
