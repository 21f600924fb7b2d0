import { guarded, hasAt, safeMul, u16le, u32le, u64le, u8 } from '../bytes';
import type { BoundedReader } from '../reader';
import type { Detection } from '../types';

// ---------------------------------------------------------------------------------------------
// ISO 9660 and UDF: volume descriptors in the volume recognition area, 2 KiB sectors 16–19
// (32 KiB – 40 KiB). The first 32 KiB are the "system area" (hybrid MBR/GPT lives there).
const VRS_OFFSET = 32 * 1024;
const VRS_LENGTH = 8 * 1024;
const SECTOR = 2048;

export async function detectIso(r: BoundedReader): Promise<Detection | null> {
  const area = await r.read(VRS_OFFSET, VRS_LENGTH);
  const ids: string[] = [];
  for (let s = 0; s + 6 <= area.length; s += SECTOR) ids.push(area.subarray(s + 1, s + 6).toString('latin1'));
  const iso9660 = ids.includes('CD001');
  const udf = ids.includes('NSR02') || ids.includes('NSR03');
  if (!iso9660 && !udf) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {
    filesystem: iso9660 && udf ? 'iso9660+udf' : iso9660 ? 'iso9660' : 'udf',
  };
  await guarded(reasons, details, 'iso', () => {
    for (let s = 0; s + SECTOR <= area.length; s += SECTOR) {
      // The primary volume descriptor: type 1, "CD001", version 1.
      if (u8(area, s) === 1 && hasAt(area, s + 1, 'CD001')) {
        const blocks = u32le(area, s + 80);
        const blockSize = u16le(area, s + 128);
        details.volumeSize = safeMul(blocks, blockSize);
        break;
      }
    }
  });
  // qemu reads an ISO as raw: the virtual size is the file's size.
  return { format: 'iso', virtualSize: r.size, reasons, details };
}

// ---------------------------------------------------------------------------------------------
// Partitioned disks: a DOS/MBR partition table (0x55AA at 510) or a GPT behind its protective
// MBR. Both are reported as `gpt` (Ironic's name), with details.partitionTable = 'mbr' | 'gpt'.
const PTE_START = 446;

interface Pte {
  boot: number;
  type: number;
  chs: [number, number, number];
  lba: number;
  sectors: number;
}

export async function detectPartitionTable(r: BoundedReader): Promise<Detection | null> {
  const head = await r.read(0, 1024);
  const mbr = head.subarray(0, 512);
  if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return null;
  // Boot sectors that carry 0x55AA but are not partition tables: a filesystem's volume boot
  // record (FAT, NTFS, exFAT: a "superfloppy" image) and the x86 Linux kernel (bzImage).
  if (isFilesystemBootSector(mbr) || isLinuxKernel(head)) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  await guarded(reasons, details, 'mbr', async () => {
    const ptes: Pte[] = [];
    for (let i = 0; i < 4; i++) {
      const o = PTE_START + 16 * i;
      ptes.push({
        boot: u8(mbr, o),
        chs: [u8(mbr, o + 1), u8(mbr, o + 2), u8(mbr, o + 3)],
        type: u8(mbr, o + 4),
        lba: u32le(mbr, o + 8),
        sectors: u32le(mbr, o + 12),
      });
    }
    ptes.forEach((p, i) => {
      if (p.boot !== 0x00 && p.boot !== 0x80)
        reasons.push(`mbr: partition entry ${i} has an invalid boot flag 0x${p.boot.toString(16)}`);
    });
    const used = ptes.filter((p) => p.type !== 0);
    if (!used.length) reasons.push('mbr: no partition defined');
    const protective = ptes.findIndex((p) => p.type === 0xee);
    if (protective >= 0) {
      const p = ptes[protective] as Pte;
      if (used.length > 1) reasons.push('mbr: a protective (GPT) entry beside other partitions');
      if (p.chs[0] !== 0 || p.chs[1] !== 2 || p.chs[2] !== 0)
        reasons.push('mbr: protective entry has an invalid start CHS');
      if (p.lba !== 1) reasons.push('mbr: protective entry does not start at LBA 1');
      // The GPT header at LBA 1: 512-byte or 4 KiB sectors.
      for (const sector of [512, 4096]) {
        const g = await r.read(sector, 92);
        if (hasAt(g, 0, 'EFI PART') && g.length >= 92) {
          details.sectorSize = sector;
          details.gptHeader = {
            revision: `0x${u32le(g, 8).toString(16)}`,
            entries: u32le(g, 80),
            lastUsableLba: u64le(g, 48).toString(),
          };
          break;
        }
      }
      details.partitionTable = details.sectorSize ? 'gpt' : 'gpt (no header found)';
    } else {
      details.partitionTable = 'mbr';
    }
    details.partitions = used.map((p) => ({
      type: `0x${p.type.toString(16)}`,
      boot: p.boot === 0x80,
      lba: p.lba,
      sectors: p.sectors,
    }));
  });
  // A partitioned disk is a raw disk: its virtual size is the file's size.
  return { format: 'gpt', virtualSize: r.size, reasons, details };
}

/** A FAT/NTFS/exFAT volume boot record (its BIOS parameter block), not a partition table. */
function isFilesystemBootSector(b: Buffer): boolean {
  if (hasAt(b, 3, 'NTFS    ') || hasAt(b, 3, 'EXFAT   ')) return true;
  const jump = (b[0] === 0xeb && b[2] === 0x90) || b[0] === 0xe9;
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13] as number;
  const fats = b[16] as number;
  const media = b[21] as number;
  const validBps = [512, 1024, 2048, 4096].includes(bytesPerSector);
  const validSpc = sectorsPerCluster > 0 && (sectorsPerCluster & (sectorsPerCluster - 1)) === 0;
  // Ironic's rule (2 FATs, fixed-disk media 0xF8), plus a complete BPB check.
  if (fats === 2 && media === 0xf8) return true;
  return jump && validBps && validSpc && (fats === 1 || fats === 2) && (media === 0xf0 || media >= 0xf8);
}

/** The x86 Linux boot sector: a jump at 0x200 over the setup header "HdrS" at 0x202 (boot protocol ≥ 2.00). */
function isLinuxKernel(b: Buffer): boolean {
  return b[0x200] === 0xeb && hasAt(b, 0x202, 'HdrS');
}
