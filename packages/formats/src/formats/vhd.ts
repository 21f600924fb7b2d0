import {
  guarded,
  guid,
  hasAt,
  printable,
  safeNumber,
  u16be,
  u16le,
  u32be,
  u32le,
  u64be,
  u64le,
  u8,
} from '../bytes';
import type { BoundedReader } from '../reader';
import type { Detection } from '../types';

// ---------------------------------------------------------------------------------------------
// VHD ("vpc" to qemu): a 512-byte big-endian footer, at the start (copy, dynamic and
// differencing disks) and/or at the end of the file (always; the only one for fixed disks).
export const VHD_COOKIE = 'conectix';
export const VHDX_SIGNATURE = 'vhdxfile';
const VHD_TYPES: Record<number, string> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' };
const VHD_MAX_GEOMETRY = 65535 * 16 * 255;

export async function detectVhd(r: BoundedReader): Promise<Detection | null> {
  let footer = await r.read(0, 512);
  let at: 'start' | 'end' = 'start';
  if (!hasAt(footer, 0, VHD_COOKIE)) {
    if (r.size < 1024) return null;
    footer = await r.read(r.size - 512, 512);
    if (!hasAt(footer, 0, VHD_COOKIE)) return null;
    at = 'end';
  }
  const reasons: string[] = [];
  const details: Record<string, unknown> = { footerAt: at };
  let virtualSize = 0;
  await guarded(reasons, details, 'vhd', async () => {
    const stored = u32be(footer, 64, 'footer');
    let sum = 0;
    for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += u8(footer, i, 'footer');
    if (~sum >>> 0 !== stored) reasons.push('vhd: footer checksum mismatch');
    const type = u32be(footer, 60);
    details.diskType = VHD_TYPES[type] ?? type;
    if (type === 4) reasons.push('vhd: differencing disk (refers to a parent image)');
    else if (type !== 2 && type !== 3) reasons.push(`vhd: unknown disk type ${type}`);
    if (at === 'end' && type !== 2)
      reasons.push('vhd: footer only at the end of the file but the disk is not fixed');
    const creator = printable(footer.subarray(28, 32));
    details.creatorApp = creator;
    const current = u64be(footer, 48);
    const chs = u16be(footer, 56) * u8(footer, 58) * u8(footer, 59);
    details.geometry = {
      cylinders: u16be(footer, 56),
      heads: u8(footer, 58),
      sectorsPerTrack: u8(footer, 59),
    };
    // qemu's rule (block/vpc.c): Virtual PC and qemu images are sized by their CHS geometry,
    // others (Hyper-V, disk2vhd, Xen…) by current_size; the maximum geometry means current_size.
    const size =
      (creator === 'vpc ' || creator === 'qemu') && chs !== VHD_MAX_GEOMETRY
        ? chs * 512
        : safeNumber((current / 512n) * 512n);
    if (size === undefined) reasons.push('vhd: virtual size out of range');
    else virtualSize = size;
    if (type === 3 || type === 4) {
      // The dynamic disk header ("cxsparse") that the footer points to.
      const off = safeNumber(u64be(footer, 16));
      const dyn = off === undefined ? Buffer.alloc(0) : await r.read(off, 1024);
      if (!hasAt(dyn, 0, 'cxsparse')) reasons.push('vhd: dynamic disk header missing');
    }
  });
  return { format: 'vhd', virtualSize, reasons, details };
}

// ---------------------------------------------------------------------------------------------
// VHDX: "vhdxfile", region table at 192 KiB → metadata region → metadata table → items.
// https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-vhdx/
const REGION_TABLE_OFFSET = 192 * 1024;
const TABLE_SIZE = 64 * 1024;
const MAX_ENTRIES = 2047;
const REGION_METADATA = '8B7CA206-4790-4B9A-B8FE-575F050F886E';
const REGION_BAT = '2DC27766-F623-4200-9D64-115E9BFD4A08';
const META_FILE_PARAMETERS = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
const META_VIRTUAL_DISK_SIZE = '2FA54224-CD1B-4876-B211-5DBED83BF4B8';
const META_PARENT_LOCATOR = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C';

export async function detectVhdx(r: BoundedReader): Promise<Detection | null> {
  const ident = await r.read(0, 8);
  if (!hasAt(ident, 0, VHDX_SIGNATURE)) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;
  await guarded(reasons, details, 'vhdx', async () => {
    const rt = await r.read(REGION_TABLE_OFFSET, TABLE_SIZE);
    if (!hasAt(rt, 0, 'regi')) {
      reasons.push('vhdx: region table not found');
      return;
    }
    const count = u32le(rt, 8, 'region table');
    if (count > MAX_ENTRIES) {
      reasons.push(`vhdx: region table has ${count} entries (limit ${MAX_ENTRIES})`);
      return;
    }
    let metaOffset: number | undefined;
    let metaLength = 0;
    for (let i = 0; i < count; i++) {
      const e = 16 + 32 * i;
      const id = guid(rt, e);
      const offset = safeNumber(u64le(rt, e + 16, 'region table'));
      const length = u32le(rt, e + 24, 'region table');
      const required = (u32le(rt, e + 28, 'region table') & 1) === 1;
      if (id === REGION_METADATA) {
        metaOffset = offset;
        metaLength = length;
      } else if (id !== REGION_BAT && required) {
        reasons.push(`vhdx: unknown required region ${id}`);
      }
    }
    if (metaOffset === undefined || metaOffset + 32 > r.size || metaLength < 32) {
      reasons.push('vhdx: metadata region missing or out of bounds');
      return;
    }
    const mt = await r.read(metaOffset, Math.min(TABLE_SIZE, metaLength));
    if (!hasAt(mt, 0, 'metadata')) {
      reasons.push('vhdx: metadata table signature missing');
      return;
    }
    const entries = u16le(mt, 10, 'metadata table');
    if (entries > MAX_ENTRIES) {
      reasons.push(`vhdx: metadata table has ${entries} entries (limit ${MAX_ENTRIES})`);
      return;
    }
    const item = (e: number) => {
      const offset = u32le(mt, e + 16, 'metadata table');
      const length = u32le(mt, e + 20, 'metadata table');
      return offset + length <= metaLength ? { offset: metaOffset! + offset, length } : undefined;
    };
    let sizeItem: { offset: number; length: number } | undefined;
    let paramsItem: { offset: number; length: number } | undefined;
    for (let i = 0; i < entries; i++) {
      const e = 32 + 32 * i;
      const id = guid(mt, e);
      if (id === META_VIRTUAL_DISK_SIZE) sizeItem = item(e);
      else if (id === META_FILE_PARAMETERS) paramsItem = item(e);
      else if (id === META_PARENT_LOCATOR) {
        reasons.push('vhdx: differencing disk (parent locator present)');
        details.parentLocator = true;
      }
    }
    if (paramsItem && paramsItem.length >= 8) {
      const p = await r.read(paramsItem.offset, 8);
      if (p.length === 8) {
        details.blockSize = u32le(p, 0);
        if (u32le(p, 4) & 2 && !details.parentLocator)
          reasons.push('vhdx: differencing disk (HasParent flag)');
      }
    }
    const sz = sizeItem && sizeItem.length >= 8 ? await r.read(sizeItem.offset, 8) : Buffer.alloc(0);
    if (sz.length < 8) {
      reasons.push('vhdx: virtual disk size not found');
      return;
    }
    const size = safeNumber(u64le(sz, 0));
    if (size === undefined) reasons.push('vhdx: virtual size out of range');
    else virtualSize = size;
  });
  return { format: 'vhdx', virtualSize, reasons, details };
}
