// Hand-made headers for the bad cases no tool writes, built from real qemu-img/genisoimage
// output where possible and patched byte by byte.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectFormat } from '@imagecache/formats';
import { tmpDir } from '@imagecache/testing';
import { mbr, pte, qemuCreate, qemuInfo, requireTool, run, vhdChecksum } from './helpers';

const MiB = 1024 * 1024;
let dir: string;
const base: Record<string, Buffer> = {};
let n = 0;

/** Writes `data` to a fresh file and returns its path. */
function file(data: Buffer, name = `f${n++}.img`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}
const copy = (b: Buffer) => Buffer.from(b);

beforeAll(() => {
  requireTool('qemu-img', 'qemu-utils');
  requireTool('genisoimage', 'genisoimage');
  requireTool('cryptsetup', 'cryptsetup-bin');
  dir = tmpDir('formats-hand-');
  const make = (name: string, fmt: string, size: string, opts: string[] = [], pre: string[] = []) => {
    base[name] = fs.readFileSync(qemuCreate(path.join(dir, `base-${name}`), fmt, size, opts, pre));
  };
  make('qcow2', 'qcow2', '64M');
  make('qcow2v2', 'qcow2', '64M', ['compat=0.10']);
  make('sparse.vmdk', 'vmdk', '64M');
  make('vhd', 'vpc', '64M');
  make('vdi', 'vdi', '64M');
  make('vhdx', 'vhdx', '64M');
  const luks = path.join(dir, 'base.luks');
  fs.writeFileSync(luks, '');
  fs.truncateSync(luks, 4 * MiB);
  run(
    'cryptsetup',
    ['luksFormat', '--type', 'luks1', '--batch-mode', '--pbkdf-force-iterations', '1000', luks, '-'],
    { input: 'x' },
  );
  base.luks = fs.readFileSync(luks);
  const raw = path.join(dir, 'so-src.raw');
  fs.writeFileSync(raw, Buffer.alloc(2 * MiB, 0x33));
  run('qemu-img', [
    'convert',
    '-f',
    'raw',
    '-O',
    'vmdk',
    '-o',
    'subformat=streamOptimized',
    raw,
    path.join(dir, 'so.vmdk'),
  ]);
  base['so.vmdk'] = fs.readFileSync(path.join(dir, 'so.vmdk'));
  fs.mkdirSync(path.join(dir, 'isoroot'));
  fs.writeFileSync(path.join(dir, 'isoroot', 'a.txt'), 'a\n');
  run('genisoimage', ['-quiet', '-o', path.join(dir, 'plain.iso'), path.join(dir, 'isoroot')]);
  base.iso = fs.readFileSync(path.join(dir, 'plain.iso'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const reasonsOf = async (p: string) => (await inspectFormat(p)).unsafeReasons.join(' | ');

describe('qcow2', () => {
  it('refuses an unknown incompatible feature bit (bit 5, bit 63)', async () => {
    const b = copy(base.qcow2!);
    b[79]! |= 0x20;
    let r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'qcow2', safe: false });
    expect(r.unsafeReasons.join()).toMatch(/incompatible features: bit 5/);
    const c = copy(base.qcow2!);
    c[72]! |= 0x80;
    r = await inspectFormat(file(c));
    expect(r.unsafeReasons.join()).toMatch(/bit 63/);
  });

  it('refuses the external-data-file bit without the extension, and the extension without the bit', async () => {
    const b = copy(base.qcow2!);
    b[79]! |= 0x04;
    expect(await reasonsOf(file(b))).toMatch(/external data file/);
    const c = copy(base.qcow2!);
    const hl = c.readUInt32BE(100);
    const ext = Buffer.alloc(24);
    ext.writeUInt32BE(0x44415441, 0);
    ext.writeUInt32BE(8, 4);
    ext.write('/dev/sda', 8, 'latin1');
    ext.copy(c, hl); // followed by an end marker (zeros)
    expect(await reasonsOf(file(c))).toMatch(/external data file \("\/dev\/sda"\)/);
  });

  it('refuses version 1 (qcow) and versions other than 2/3', async () => {
    for (const [v, re] of [
      [1, /version 1/],
      [4, /unsupported version 4/],
      [0, /unsupported version 0/],
    ] as const) {
      const b = copy(base.qcow2!);
      b.writeUInt32BE(v, 4);
      const r = await inspectFormat(file(b));
      expect(r).toMatchObject({ format: 'qcow2', safe: false });
      expect(r.unsafeReasons.join()).toMatch(re);
    }
  });

  it('accepts a v2 header (no feature fields)', async () => {
    expect(await inspectFormat(file(copy(base.qcow2v2!)))).toMatchObject({
      format: 'qcow2',
      safe: true,
      virtualSize: 64 * MiB,
    });
  });

  it('refuses a qcow2 that also carries an MBR signature at 510', async () => {
    const b = copy(base.qcow2!);
    b[510] = 0x55;
    b[511] = 0xaa;
    b[446 + 4] = 0x83; // and a plausible partition entry
    const r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'qcow2', safe: false });
    expect(r.unsafeReasons[0]).toBe('more than one format detected: qcow2, gpt');
  });

  it('follows a long header-extension chain past the first 64 KiB (2 MiB clusters)', async () => {
    const b = fs.readFileSync(
      qemuCreate(path.join(dir, 'big-cluster.qcow2'), 'qcow2', '1G', ['cluster_size=2M']),
    );
    let off = b.readUInt32BE(100);
    for (let i = 0; i < 3; i++) {
      b.writeUInt32BE(0x11111111, off); // unknown extension, skipped
      b.writeUInt32BE(65528, off + 4);
      off += 65536;
    }
    b.writeUInt32BE(0x44415441, off);
    b.writeUInt32BE(4, off + 4);
    b.write('evil', off + 8, 'latin1');
    b.fill(0, off + 16, off + 24);
    const r = await inspectFormat(file(b));
    expect(r.unsafeReasons).toEqual(['qcow2: image uses an external data file ("evil")']);
    expect(r.details?.bytesRead).toBeLessThanOrEqual(2 * MiB + 128 * 1024);
  });

  it('reports truncated, oversized and overflowing headers as unsafe, never throws', async () => {
    const t = await inspectFormat(file(base.qcow2!.subarray(0, 40)));
    expect(t).toMatchObject({ format: 'qcow2', safe: false });
    expect(t.unsafeReasons.join()).toMatch(/truncated/);

    const big = copy(base.qcow2!);
    big.writeBigUInt64BE(1n << 63n, 24);
    expect(await reasonsOf(file(big))).toMatch(/virtual size out of range/);

    const bf = copy(base.qcow2!);
    bf.writeBigUInt64BE(0xffffffffffffffffn, 8);
    bf.writeUInt32BE(0xffffffff, 16);
    expect(await reasonsOf(file(bf))).toMatch(/backing file/);

    const cb = copy(base.qcow2!);
    cb.writeUInt32BE(40, 20);
    expect(await reasonsOf(file(cb))).toMatch(/invalid cluster size/);

    const ov = copy(base.qcow2!);
    const hl = ov.readUInt32BE(100);
    ov.writeUInt32BE(0x12345678, hl);
    ov.writeUInt32BE(0xfffffff0, hl + 4);
    expect(await reasonsOf(file(ov))).toMatch(/extension overflows/);
  });
});

describe('MBR and GPT', () => {
  const disk = (sector0: Buffer, size = 4 * MiB) => {
    const b = Buffer.alloc(size);
    sector0.copy(b);
    return b;
  };

  it('accepts a plain MBR disk as gpt', async () => {
    const r = await inspectFormat(file(disk(mbr([pte(0x80, 0x83, 2048, 4096, [0x20, 0x21, 0])]))));
    expect(r).toMatchObject({ format: 'gpt', safe: true, virtualSize: 4 * MiB });
    expect(r.details).toMatchObject({ partitionTable: 'mbr' });
  });

  it('refuses a bad boot flag, an empty table, a protective entry beside others or misplaced', async () => {
    expect(await reasonsOf(file(disk(mbr([pte(0x12, 0x83, 2048, 4096)]))))).toMatch(/invalid boot flag 0x12/);
    expect(await reasonsOf(file(disk(mbr([]))))).toMatch(/no partition defined/);
    expect(await reasonsOf(file(disk(mbr([pte(0, 0xee, 1, 8191), pte(0, 0x83, 2048, 4096)]))))).toMatch(
      /protective \(GPT\) entry beside other partitions/,
    );
    expect(await reasonsOf(file(disk(mbr([pte(0, 0xee, 2, 8191)]))))).toMatch(/does not start at LBA 1/);
    expect(await reasonsOf(file(disk(mbr([pte(0, 0xee, 1, 8191, [0, 1, 0])]))))).toMatch(/invalid start CHS/);
  });

  it('accepts a GPT with 4 KiB sectors', async () => {
    const b = disk(mbr([pte(0, 0xee, 1, 1023)]));
    b.write('EFI PART', 4096, 'latin1');
    const r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'gpt', safe: true });
    expect(r.details).toMatchObject({ partitionTable: 'gpt', sectorSize: 4096 });
  });

  it('reads a bzImage-like blob (0x55AA, code in the table, "HdrS" setup header) as raw', async () => {
    const b = Buffer.alloc(600 * 1024);
    for (let i = 0; i < 512; i++) b[i] = (i * 37 + 11) & 0xff; // boot-sector code and messages
    b[510] = 0x55;
    b[511] = 0xaa;
    b[0x200] = 0xeb; // jmp over the setup header
    b[0x201] = 0x66;
    b.write('HdrS', 0x202, 'latin1');
    b.writeUInt16LE(0x020f, 0x206);
    const r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'raw', safe: true, virtualSize: 600 * 1024 });
    // Without the setup header the same sector is an MBR with garbage entries: refused.
    b.fill(0, 0x200, 0x210);
    const m = await inspectFormat(file(b));
    expect(m).toMatchObject({ format: 'gpt', safe: false });
  });

  it('reads a FAT volume boot record (superfloppy) as raw', async () => {
    const b = Buffer.alloc(MiB);
    b.set([0xeb, 0x3c, 0x90], 0);
    b.write('MSDOS5.0', 3, 'latin1');
    b.writeUInt16LE(512, 11);
    b[13] = 4;
    b.writeUInt16LE(1, 14);
    b[16] = 2;
    b[21] = 0xf8;
    for (let i = 62; i < 510; i++) b[i] = (i * 13) & 0xff; // boot code over the "partition table"
    b[510] = 0x55;
    b[511] = 0xaa;
    expect(await inspectFormat(file(b))).toMatchObject({ format: 'raw', safe: true });
  });
});

describe('vmdk', () => {
  /** Replaces the embedded descriptor (at 512) of a qemu-made sparse vmdk. */
  const withDescriptor = (img: Buffer, text: string) => {
    const b = copy(img);
    const size = Number(b.readBigUInt64LE(36)) * 512;
    if (text.length > size) throw new Error('descriptor too long');
    b.fill(0, 512, 512 + size);
    b.write(text, 512, 'latin1');
    return b;
  };
  const descriptorOf = (img: Buffer) => {
    const d = img.subarray(512, 512 + Number(img.readBigUInt64LE(36)) * 512);
    return d.subarray(0, d.indexOf(0)).toString('latin1');
  };

  it('accepts a qemu monolithicSparse descriptor as is', async () => {
    expect(
      await inspectFormat(file(withDescriptor(base['sparse.vmdk']!, descriptorOf(base['sparse.vmdk']!)))),
    ).toMatchObject({
      format: 'vmdk',
      safe: true,
    });
  });

  it('refuses an extent path containing "/"', async () => {
    const text = descriptorOf(base['sparse.vmdk']!).replace(
      /RW (\d+) SPARSE "[^"]*"/,
      'RW $1 SPARSE "/etc/shadow"',
    );
    expect(text).toContain('/etc/shadow');
    const r = await inspectFormat(file(withDescriptor(base['sparse.vmdk']!, text)));
    expect(r).toMatchObject({ format: 'vmdk', safe: false });
    expect(r.unsafeReasons).toEqual(['vmdk: an extent path contains "/"']);
  });

  it('refuses a text descriptor file whose extent has a path, even with an allowed createType', async () => {
    const text =
      '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicSparse"\n\nRW 131072 SPARSE "../../etc/passwd"\n';
    const r = await inspectFormat(file(Buffer.from(text)));
    expect(r).toMatchObject({ format: 'vmdk', safe: false, virtualSize: 131072 * 512 });
    expect(r.unsafeReasons).toEqual([
      'vmdk: descriptor file without data (its extents are other files)',
      'vmdk: an extent path contains "/"',
    ]);
  });

  it('refuses lines it does not understand, missing extents, non-ASCII, zero capacity, COWD', async () => {
    const d = descriptorOf(base['sparse.vmdk']!);
    expect(await reasonsOf(file(withDescriptor(base['sparse.vmdk']!, `${d}\nsomething odd\n`)))).toMatch(
      /not understood/,
    );
    expect(await reasonsOf(file(withDescriptor(base['sparse.vmdk']!, d.replace(/^RW .*$/m, ''))))).toMatch(
      /no extent/,
    );
    expect(await reasonsOf(file(withDescriptor(base['sparse.vmdk']!, `${d}# caf\xe9\n`)))).toMatch(
      /not ASCII/,
    );
    const z = copy(base['sparse.vmdk']!);
    z.writeBigUInt64LE(0n, 12);
    expect(await reasonsOf(file(z))).toMatch(/zero capacity/);
    const cowd = Buffer.alloc(64 * 1024);
    cowd.write('COWD', 0, 'latin1');
    cowd.writeUInt32LE(1, 4);
    cowd.writeUInt32LE(2048, 12);
    expect(await inspectFormat(file(cowd))).toMatchObject({
      format: 'vmdk',
      safe: false,
      virtualSize: 2048 * 512,
    });
  });

  describe('streamOptimized with a footer (grain directory at end)', () => {
    const GD_AT_END = 0xffffffffffffffffn;
    const marker = (type: number) => {
      const m = Buffer.alloc(512);
      m.writeUInt32LE(type, 12);
      return m;
    };
    /** VMware's layout: header.gdOffset = GD_AT_END; file ends with footer marker, footer, EOS. */
    const withFooter = (mutate: (footer: Buffer, eos: Buffer) => void = () => undefined) => {
      const img = copy(base['so.vmdk']!);
      const footer = Buffer.from(img.subarray(0, 512));
      img.writeBigUInt64LE(GD_AT_END, 56);
      const eos = marker(0);
      mutate(footer, eos);
      return Buffer.concat([img, marker(3), footer, eos]);
    };

    it('accepts a valid footer (and agrees with qemu-img, which reads it)', async () => {
      const p = file(withFooter(), 'footer.vmdk');
      const r = await inspectFormat(p);
      expect(r).toMatchObject({ format: 'vmdk', safe: true, virtualSize: 2 * MiB });
      expect(r.details).toMatchObject({ footer: true, createType: 'streamOptimized' });
      expect(qemuInfo(p)['virtual-size']).toBe(r.virtualSize);
    });

    it('refuses a footer that differs from the header, a bad end-of-stream marker, or none', async () => {
      expect(await reasonsOf(file(withFooter((f) => f.writeBigUInt64LE(7n, 28))))).toMatch(
        /different descriptor/,
      );
      expect(await reasonsOf(file(withFooter((f) => f.writeBigUInt64LE(GD_AT_END, 56))))).toMatch(
        /another footer/,
      );
      expect(await reasonsOf(file(withFooter((_f, eos) => eos.writeUInt32LE(9, 12))))).toMatch(
        /end-of-stream/,
      );
      expect(await reasonsOf(file(withFooter((f) => f.write('XXXX', 0, 'latin1'))))).toMatch(
        /footer signature/,
      );
      const noFooter = copy(base['so.vmdk']!);
      noFooter.writeBigUInt64LE(GD_AT_END, 56);
      expect(await reasonsOf(file(noFooter))).toMatch(/footer/);
    });
  });
});

describe('vhd, vhdx, vdi, luks', () => {
  it('refuses a differencing vhd and a footer with a bad checksum', async () => {
    const b = copy(base.vhd!);
    b.writeUInt32BE(4, 60);
    vhdChecksum(b.subarray(0, 512));
    expect(await reasonsOf(file(b))).toMatch(/differencing/);
    const c = copy(base.vhd!);
    c[100]! ^= 0xff;
    expect(await reasonsOf(file(c))).toMatch(/checksum mismatch/);
  });

  it('refuses a qcow2 that also ends with a vhd footer', async () => {
    const footer = Buffer.from(base.vhd!.subarray(0, 512));
    footer.writeUInt32BE(2, 60);
    vhdChecksum(footer);
    const r = await inspectFormat(file(Buffer.concat([base.qcow2!, footer])));
    expect(r).toMatchObject({ format: 'qcow2', safe: false });
    expect(r.unsafeReasons[0]).toBe('more than one format detected: qcow2, vhd');
  });

  it('refuses a differencing vdi', async () => {
    const b = copy(base.vdi!);
    b.writeUInt32LE(4, 0x4c);
    expect(await reasonsOf(file(b))).toMatch(/differencing/);
  });

  it('refuses a vhdx with a parent locator, and one without its region table', async () => {
    const b = copy(base.vhdx!);
    // Retag the Page 83 metadata item as a parent locator.
    const page83 = Buffer.from('ab12cabee6b22345 93efc309e000c746'.replace(' ', ''), 'hex');
    const at = b.indexOf(page83);
    expect(at).toBeGreaterThan(0);
    Buffer.from('2d5fd3a80bb34d45abf7d3d84834ab0c', 'hex').copy(b, at);
    expect(await reasonsOf(file(b))).toMatch(/differencing disk \(parent locator/);
    const c = copy(base.vhdx!);
    c.write('xxxx', 192 * 1024, 'latin1');
    expect(await reasonsOf(file(c))).toMatch(/region table not found/);
  });

  it('refuses a luks1 payload beyond the end of the file and unknown versions', async () => {
    const b = copy(base.luks!.subarray(0, 1024 * 1024));
    expect(await reasonsOf(file(b))).toMatch(/payload offset lies beyond/);
    const c = copy(base.luks!);
    c.writeUInt16BE(7, 6);
    expect(await reasonsOf(file(c))).toMatch(/unsupported LUKS version 7/);
  });
});

describe('iso', () => {
  it('accepts a hand-made hybrid ISO + GPT as iso, whatever its MBR says', async () => {
    const b = copy(base.iso!);
    mbr([pte(0, 0xee, 1, 0xffffffff)]).copy(b, 0);
    b.write('EFI PART', 512, 'latin1');
    const r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'iso', safe: true, virtualSize: b.length });
    expect(r.details).toMatchObject({ hybrid: 'gpt', formats: ['iso', 'gpt'] });
    const c = copy(base.iso!);
    mbr([pte(0x42, 0x83, 0, 100)]).copy(c, 0); // would be refused as a disk
    expect(await inspectFormat(file(c))).toMatchObject({ format: 'iso', safe: true });
  });

  it('refuses an ISO that is also a qcow2', async () => {
    const b = copy(base.iso!);
    base.qcow2!.copy(b, 0, 0, 4096);
    const r = await inspectFormat(file(b));
    expect(r).toMatchObject({ format: 'qcow2', safe: false });
    expect(r.unsafeReasons[0]).toBe('more than one format detected: qcow2, iso');
  });

  it('recognises pure UDF (BEA01, NSR03, TEA01) and not a lone BEA01', async () => {
    const b = Buffer.alloc(MiB);
    b.write('\0BEA01\x01', 0x8000, 'latin1');
    b.write('\0NSR03\x01', 0x8800, 'latin1');
    b.write('\0TEA01\x01', 0x9000, 'latin1');
    expect(await inspectFormat(file(b))).toMatchObject({
      format: 'iso',
      safe: true,
      details: expect.objectContaining({ filesystem: 'udf' }),
    });
    b.fill(0, 0x8800);
    expect(await inspectFormat(file(b))).toMatchObject({ format: 'raw' });
  });
});
