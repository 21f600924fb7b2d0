import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

/** Debian packages the tests need: qemu-utils, xorriso, genisoimage, gdisk, cryptsetup-bin. */
export function requireTool(name: string, pkg: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const found = r.stdout.trim();
  if (r.status !== 0 || !found) throw new Error(`${name} not found: apt-get install -y ${pkg}`);
  return found;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, input: opts.input });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** `qemu-img create -f <fmt> [-o opts] file size`, run in the file's folder (so relative names stay relative). */
export function qemuCreate(
  file: string,
  fmt: string,
  size: string,
  opts: string[] = [],
  pre: string[] = [],
): string {
  const args = ['create', '-q', ...pre, '-f', fmt];
  if (opts.length) args.push('-o', opts.join(','));
  // qemu's PBKDF benchmark (luks) fails now and then on this VM, whose per-thread CPU clock can read 0 ms for a
  // short burst of work: "Unable to get accurate CPU usage". It is qemu measuring itself, not the image: try again,
  // with a pause so that the next burst lands on another clock tick.
  for (let attempt = 1; ; attempt++) {
    try {
      run('qemu-img', [...args, path.basename(file), size], { cwd: path.dirname(file) });
      return file;
    } catch (err) {
      if (attempt >= 20 || !/accurate CPU usage/.test((err as Error).message)) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50 * attempt);
    }
  }
}

export function qemuInfo(file: string, fmt?: string): { format: string; 'virtual-size': number } {
  const args = ['info', '--output=json'];
  if (fmt) args.push('-f', fmt);
  args.push('-U', file);
  return JSON.parse(run('qemu-img', args)) as { format: string; 'virtual-size': number };
}

/** Write bytes at an offset of an existing file. */
export function patch(file: string, offset: number, bytes: Buffer | number[]): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    fs.writeSync(fd, b, 0, b.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** A deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A FileHandle stand-in over a Buffer (only what the inspector uses: stat and positioned
 * read), counting what it serves. Lets the fuzz test run thousands of inspections without disk I/O.
 */
export class MemoryFile {
  served = 0;
  reads = 0;
  constructor(
    public data: Buffer,
    public size = data.length,
  ) {}

  handle(): FileHandle {
    return {
      stat: async () => ({ isFile: () => true, size: this.size, blocks: Math.ceil(this.size / 512) }),
      read: async (buf: Buffer, offset: number, length: number, position: number) => {
        this.reads++;
        const end = Math.min(this.size, this.data.length, position + length);
        const n = Math.max(0, end - position);
        if (n > 0) this.data.copy(buf, offset, position, end);
        this.served += n;
        return { bytesRead: n, buffer: buf };
      },
    } as unknown as FileHandle;
  }
}

/** A DOS partition table entry (16 bytes). */
export function pte(
  boot: number,
  type: number,
  lba: number,
  sectors: number,
  chs: [number, number, number] = [0, 2, 0],
): Buffer {
  const e = Buffer.alloc(16);
  e[0] = boot;
  e[1] = chs[0];
  e[2] = chs[1];
  e[3] = chs[2];
  e[4] = type;
  e[5] = 0xfe;
  e[6] = 0xff;
  e[7] = 0xff;
  e.writeUInt32LE(lba, 8);
  e.writeUInt32LE(sectors, 12);
  return e;
}

/** A 512-byte MBR with the given entries and the 0x55AA signature. */
export function mbr(entries: Buffer[], code = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(512);
  code.copy(b, 0, 0, Math.min(code.length, 440));
  entries.forEach((e, i) => e.copy(b, 446 + 16 * i));
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** Recomputes a VHD footer's checksum in place (one's complement of the byte sum). */
export function vhdChecksum(footer: Buffer): void {
  footer.writeUInt32BE(0, 64);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += footer[i] as number;
  footer.writeUInt32BE(~sum >>> 0, 64);
}
