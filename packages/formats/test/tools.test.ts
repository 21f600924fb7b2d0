// Real fixtures made at test time by the real tools (qemu-img, genisoimage, xorriso, sgdisk,
// cryptsetup). Each one's format, virtual size (against `qemu-img info`) and safety are checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectFormat, type FormatReport } from '@imagecache/formats';
import { tmpDir } from '@imagecache/testing';
import { qemuCreate, qemuInfo, requireTool, run } from './helpers';

let dir: string;

beforeAll(() => {
  requireTool('qemu-img', 'qemu-utils');
  requireTool('qemu-io', 'qemu-utils');
  requireTool('genisoimage', 'genisoimage');
  requireTool('xorriso', 'xorriso');
  requireTool('sgdisk', 'gdisk');
  requireTool('cryptsetup', 'cryptsetup-bin');
  dir = tmpDir('formats-tools-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const f = (name: string) => path.join(dir, name);

interface Case {
  name: string;
  make: () => string;
  format: FormatReport['format'];
  safe: boolean;
  reasons?: RegExp[];
  /** Compare virtualSize with `qemu-img info` (optionally forcing qemu's driver name). */
  qemu?: true | string;
  /** Expected virtualSize when qemu-img cannot tell (formats it does not open). */
  virtualSize?: number;
}

const MiB = 1024 * 1024;

function isoTree(): string {
  const root = f('isoroot');
  if (!fs.existsSync(root)) {
    fs.mkdirSync(path.join(root, 'boot'), { recursive: true });
    fs.writeFileSync(path.join(root, 'hello.txt'), 'hello\n');
    fs.writeFileSync(path.join(root, 'boot', 'efi.img'), Buffer.alloc(MiB));
  }
  return root;
}

function luksFormat(name: string, type: 'luks1' | 'luks2'): string {
  const file = f(name);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 32 * MiB);
  run(
    'cryptsetup',
    [
      'luksFormat',
      '--type',
      type,
      '--batch-mode',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      file,
      '-',
    ],
    {
      input: 'passphrase',
    },
  );
  return file;
}

const cases: Case[] = [
  // qcow2
  {
    name: 'qcow2 v3',
    make: () => qemuCreate(f('v3.qcow2'), 'qcow2', '64M'),
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 v2 (compat=0.10)',
    make: () => qemuCreate(f('v2.qcow2'), 'qcow2', '10G', ['compat=0.10']),
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 with data written by qemu-io',
    make: () => {
      const file = qemuCreate(f('data.qcow2'), 'qcow2', '16M');
      run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 3M', '-c', 'write -P 0x55 8M 1M', file]);
      return file;
    },
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 with zstd compression type',
    make: () => qemuCreate(f('zstd.qcow2'), 'qcow2', '1G', ['compression_type=zstd']),
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 with 2 MiB clusters',
    make: () => qemuCreate(f('big-cluster.qcow2'), 'qcow2', '1G', ['cluster_size=2M']),
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 encrypted (luks)',
    make: () =>
      qemuCreate(
        f('enc.qcow2'),
        'qcow2',
        '8M',
        ['encrypt.format=luks', 'encrypt.key-secret=s0'],
        ['--object', 'secret,id=s0,data=x'],
      ),
    format: 'qcow2',
    safe: true,
    qemu: true,
  },
  {
    name: 'qcow2 with a backing file',
    make: () => {
      qemuCreate(f('base.qcow2'), 'qcow2', '64M');
      return qemuCreate(f('child.qcow2'), 'qcow2', '64M', ['backing_file=base.qcow2', 'backing_fmt=qcow2']);
    },
    format: 'qcow2',
    safe: false,
    reasons: [/backing file \("base.qcow2"\)/],
    qemu: true,
  },
  {
    name: 'qcow2 with an external data file',
    make: () => qemuCreate(f('datafile.qcow2'), 'qcow2', '64M', ['data_file=datafile.raw']),
    format: 'qcow2',
    safe: false,
    reasons: [/external data file \("datafile.raw"\)/],
    qemu: true,
  },
  {
    name: 'qcow2 with extended L2 entries (refused like Ironic)',
    make: () => qemuCreate(f('xl2.qcow2'), 'qcow2', '64M', ['extended_l2=on']),
    format: 'qcow2',
    safe: false,
    reasons: [/incompatible features: extended L2/],
    qemu: true,
  },
  // qed
  {
    name: 'qed',
    make: () => qemuCreate(f('x.qed'), 'qed', '64M'),
    format: 'qed',
    safe: false,
    reasons: [/never accepted/],
    qemu: true,
  },
  // vhd (vpc)
  {
    name: 'vhd dynamic',
    make: () => qemuCreate(f('dyn.vhd'), 'vpc', '64M'),
    format: 'vhd',
    safe: true,
    qemu: true,
  },
  {
    name: 'vhd fixed (footer at the end only)',
    make: () => qemuCreate(f('fixed.vhd'), 'vpc', '32M', ['subformat=fixed']),
    format: 'vhd',
    safe: true,
    qemu: 'vpc',
  },
  {
    name: 'vhd dynamic with force_size',
    make: () => qemuCreate(f('force.vhd'), 'vpc', '100000000', ['force_size=on']),
    format: 'vhd',
    safe: true,
    qemu: true,
  },
  // vhdx
  {
    name: 'vhdx dynamic',
    make: () => qemuCreate(f('dyn.vhdx'), 'vhdx', '3G'),
    format: 'vhdx',
    safe: true,
    qemu: true,
  },
  {
    name: 'vhdx fixed',
    make: () => qemuCreate(f('fixed.vhdx'), 'vhdx', '4M', ['subformat=fixed']),
    format: 'vhdx',
    safe: true,
    qemu: true,
  },
  // vmdk
  {
    name: 'vmdk monolithicSparse',
    make: () => qemuCreate(f('sparse.vmdk'), 'vmdk', '64M', ['subformat=monolithicSparse']),
    format: 'vmdk',
    safe: true,
    qemu: true,
  },
  {
    name: 'vmdk streamOptimized (converted, with data)',
    make: () => {
      const raw = f('so-src.raw');
      fs.writeFileSync(raw, Buffer.alloc(3 * MiB, 0x5a));
      run('qemu-img', [
        'convert',
        '-f',
        'raw',
        '-O',
        'vmdk',
        '-o',
        'subformat=streamOptimized',
        raw,
        f('so.vmdk'),
      ]);
      return f('so.vmdk');
    },
    format: 'vmdk',
    safe: true,
    qemu: true,
  },
  {
    name: 'vmdk monolithicFlat (a descriptor file)',
    make: () => qemuCreate(f('flat.vmdk'), 'vmdk', '64M', ['subformat=monolithicFlat']),
    format: 'vmdk',
    safe: false,
    reasons: [/descriptor file without data/, /createType "monolithicFlat"/],
    qemu: true,
  },
  {
    name: 'vmdk twoGbMaxExtentSparse (a descriptor file)',
    make: () => qemuCreate(f('split.vmdk'), 'vmdk', '8M', ['subformat=twoGbMaxExtentSparse']),
    format: 'vmdk',
    safe: false,
    reasons: [/createType "twoGbMaxExtentSparse"/],
    qemu: true,
  },
  {
    name: 'vmdk with a parent (parentFileNameHint, a backing file to qemu)',
    make: () => {
      qemuCreate(f('parent.vmdk'), 'vmdk', '64M');
      return qemuCreate(f('child.vmdk'), 'vmdk', '64M', [
        `backing_file=${f('parent.vmdk')}`,
        'backing_fmt=vmdk',
      ]);
    },
    format: 'vmdk',
    safe: false,
    reasons: [/parentFileNameHint/],
    qemu: true,
  },
  // vdi
  {
    name: 'vdi dynamic',
    make: () => qemuCreate(f('dyn.vdi'), 'vdi', '64M'),
    format: 'vdi',
    safe: true,
    qemu: true,
  },
  {
    name: 'vdi static',
    make: () => qemuCreate(f('static.vdi'), 'vdi', '4M', ['static=on']),
    format: 'vdi',
    safe: true,
    qemu: true,
  },
  // luks
  {
    name: 'luks (qemu-img)',
    make: () =>
      qemuCreate(
        f('q.luks'),
        'luks',
        '64M',
        ['key-secret=s0', 'iter-time=10'],
        ['--object', 'secret,id=s0,data=x'],
      ),
    format: 'luks',
    safe: true,
    qemu: true,
  },
  {
    name: 'luks1 (cryptsetup)',
    make: () => luksFormat('c1.luks', 'luks1'),
    format: 'luks',
    safe: true,
    qemu: true,
  },
  {
    name: 'luks2 (cryptsetup; qemu-img opens LUKS1 only)',
    make: () => luksFormat('c2.luks', 'luks2'),
    format: 'luks',
    safe: false,
    reasons: [/LUKS version 2/],
    virtualSize: 16 * MiB, // 32 MiB file, 16 MiB LUKS2 header
  },
  // iso
  {
    name: 'iso 9660 (genisoimage)',
    make: () => (
      run('genisoimage', ['-quiet', '-o', f('plain.iso'), '-V', 'PLAIN', isoTree()]),
      f('plain.iso')
    ),
    format: 'iso',
    safe: true,
    qemu: true,
  },
  {
    name: 'iso 9660 + UDF bridge (genisoimage -udf)',
    make: () => (run('genisoimage', ['-quiet', '-udf', '-o', f('udf.iso'), isoTree()]), f('udf.iso')),
    format: 'iso',
    safe: true,
    qemu: true,
  },
  {
    name: 'hybrid iso with a GPT (xorriso, appended EFI partition as GPT)',
    make: () => {
      run('xorriso', [
        '-as',
        'mkisofs',
        '-quiet',
        '-o',
        f('hybrid-gpt.iso'),
        '-e',
        'boot/efi.img',
        '-no-emul-boot',
        '-append_partition',
        '2',
        '0xef',
        path.join(isoTree(), 'boot', 'efi.img'),
        '-appended_part_as_gpt',
        isoTree(),
      ]);
      return f('hybrid-gpt.iso');
    },
    format: 'iso',
    safe: true,
    qemu: true,
  },
  {
    name: 'hybrid iso with an MBR (xorriso, appended EFI partition)',
    make: () => {
      run('xorriso', [
        '-as',
        'mkisofs',
        '-quiet',
        '-o',
        f('hybrid-mbr.iso'),
        '-e',
        'boot/efi.img',
        '-no-emul-boot',
        '-append_partition',
        '2',
        '0xef',
        path.join(isoTree(), 'boot', 'efi.img'),
        isoTree(),
      ]);
      return f('hybrid-mbr.iso');
    },
    format: 'iso',
    safe: true,
    qemu: true,
  },
  // partitioned disks
  {
    name: 'gpt disk (sgdisk)',
    make: () => {
      const file = f('disk.gpt');
      fs.writeFileSync(file, '');
      fs.truncateSync(file, 64 * MiB);
      run('sgdisk', ['-n', '1:2048:+10M', '-t', '1:ef00', '-n', '2:0:0', '-t', '2:8300', file]);
      return file;
    },
    format: 'gpt',
    safe: true,
    qemu: true,
  },
  {
    name: 'fixed vhd of a gpt disk (the partition table is the disk content)',
    make: () => {
      const src = f('disk2.gpt');
      fs.writeFileSync(src, '');
      fs.truncateSync(src, 16 * MiB);
      run('sgdisk', ['-n', '1:2048:0', src]);
      run('qemu-img', [
        'convert',
        '-f',
        'raw',
        '-O',
        'vpc',
        '-o',
        'subformat=fixed',
        src,
        f('gpt-fixed.vhd'),
      ]);
      return f('gpt-fixed.vhd');
    },
    format: 'vhd',
    safe: true,
    qemu: 'vpc',
  },
  // raw
  {
    name: 'raw (random bytes)',
    make: () => {
      const file = f('random.raw');
      // Deterministic bytes with no signature anywhere a detector looks.
      const b = Buffer.alloc(2 * MiB);
      for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
      b[510] = 0;
      fs.writeFileSync(file, b);
      return file;
    },
    format: 'raw',
    safe: true,
    qemu: true,
  },
  {
    name: 'raw (qemu-img create -f raw, sparse)',
    make: () => qemuCreate(f('sparse.raw'), 'raw', '1G'),
    format: 'raw',
    safe: true,
    qemu: true,
  },
];

describe('tool-made fixtures', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const file = c.make();
    const report = await inspectFormat(file);
    expect(report.format).toBe(c.format);
    expect({ safe: report.safe, reasons: report.unsafeReasons }).toEqual({
      safe: c.safe,
      reasons: c.safe ? [] : expect.arrayContaining((c.reasons ?? []).map((re) => expect.stringMatching(re))),
    });
    expect(report.actualSize).toBe(fs.statSync(file).size);
    if (c.qemu) {
      const info = qemuInfo(file, typeof c.qemu === 'string' ? c.qemu : undefined);
      expect(report.virtualSize).toBe(info['virtual-size']);
    } else if (c.virtualSize !== undefined) {
      expect(report.virtualSize).toBe(c.virtualSize);
    }
    // Bounded reads, whatever the format or the file's size (64 KiB blocks, a handful of them).
    expect(report.details?.bytesRead).toBeLessThanOrEqual(512 * 1024);
  });
});
