import { guarded, hasAt, printable, safeMul, safeNumber, u16be, u32be, u32le, u64be, u64le } from '../bytes';
import type { BoundedReader } from '../reader';
import type { Detection } from '../types';

// ---------------------------------------------------------------------------------------------
// QED: detected so that it can be refused; never accepted.
export const QED_MAGIC = 'QED\0';

export async function detectQed(r: BoundedReader): Promise<Detection | null> {
  const h = await r.read(0, 64);
  if (!hasAt(h, 0, QED_MAGIC)) return null;
  const reasons = ['qed: the QED format is never accepted'];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;
  await guarded(reasons, details, 'qed', () => {
    const features = u64le(h, 16);
    details.backingFile = (features & 1n) !== 0n;
    const size = safeNumber(u64le(h, 48));
    if (size !== undefined) virtualSize = size;
  });
  return { format: 'qed', virtualSize, reasons, details };
}

// ---------------------------------------------------------------------------------------------
// VDI (VirtualBox): "<<< … >>>" text, then the signature 0xbeda107f at 0x40.
export const VDI_SIGNATURE = 0xbeda107f;
const VDI_VERSION_1_1 = 0x00010001;
const VDI_TYPES: Record<number, string> = { 1: 'dynamic', 2: 'fixed', 3: 'undo', 4: 'differencing' };

export async function detectVdi(r: BoundedReader): Promise<Detection | null> {
  const h = await r.read(0, 512);
  if (h.length < 0x44 || u32le(h, 0x40) !== VDI_SIGNATURE) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;
  await guarded(reasons, details, 'vdi', () => {
    const version = u32le(h, 0x44);
    details.version = `${version >>> 16}.${version & 0xffff}`;
    if (version !== VDI_VERSION_1_1) {
      reasons.push(`vdi: unsupported header version ${details.version as string}`);
      return;
    }
    const type = u32le(h, 0x4c);
    details.imageType = VDI_TYPES[type] ?? type;
    if (type === 4) reasons.push('vdi: differencing image (refers to a parent image)');
    else if (type !== 1 && type !== 2) reasons.push(`vdi: unsupported image type ${type}`);
    const size = safeNumber(u64le(h, 0x170));
    if (size === undefined) reasons.push('vdi: virtual size out of range');
    else virtualSize = size;
  });
  return { format: 'vdi', virtualSize, reasons, details };
}

// ---------------------------------------------------------------------------------------------
// LUKS: v1 (the only version qemu-img opens) and v2 (recognised, refused like Ironic does).
export const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);
const LUKS2_JSON_OFFSET = 4096;
const LUKS2_MAX_JSON = 1024 * 1024 - LUKS2_JSON_OFFSET;

export async function detectLuks(r: BoundedReader): Promise<Detection | null> {
  const h = await r.read(0, 592);
  if (!hasAt(h, 0, LUKS_MAGIC)) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;
  await guarded(reasons, details, 'luks', async () => {
    const version = u16be(h, 6);
    details.version = version;
    if (version === 1) {
      details.cipher = `${cString(h, 8, 32)}-${cString(h, 40, 32)}`;
      details.hash = cString(h, 72, 32);
      const payload = safeMul(u32be(h, 104), 512) ?? Infinity;
      details.payloadOffset = payload;
      if (payload > r.size) reasons.push('luks: payload offset lies beyond the end of the file');
      else virtualSize = r.size - payload;
    } else if (version === 2) {
      reasons.push('luks: LUKS version 2 is not supported (qemu-img opens LUKS1 only)');
      const hdrSize = safeNumber(u64be(h, 8));
      details.headerSize = hdrSize;
      if (hdrSize === undefined || hdrSize <= LUKS2_JSON_OFFSET) return;
      const jsonLen = Math.min(hdrSize - LUKS2_JSON_OFFSET, LUKS2_MAX_JSON);
      const raw = await r.read(LUKS2_JSON_OFFSET, jsonLen);
      const nul = raw.indexOf(0);
      let meta: unknown;
      try {
        meta = JSON.parse(raw.subarray(0, nul < 0 ? raw.length : nul).toString('latin1'));
      } catch {
        reasons.push('luks: invalid LUKS2 JSON metadata');
        return;
      }
      const segments = (meta as { segments?: Record<string, { offset?: unknown; size?: unknown }> })
        ?.segments;
      const seg = segments && typeof segments === 'object' ? Object.values(segments)[0] : undefined;
      const offset =
        typeof seg?.offset === 'string' && /^\d{1,15}$/.test(seg.offset) ? Number(seg.offset) : undefined;
      if (offset === undefined) return;
      details.payloadOffset = offset;
      if (typeof seg?.size === 'string' && /^\d{1,15}$/.test(seg.size)) virtualSize = Number(seg.size);
      else if (offset <= r.size) virtualSize = r.size - offset;
    } else {
      reasons.push(`luks: unsupported LUKS version ${version}`);
    }
  });
  return { format: 'luks', virtualSize, reasons, details };
}

function cString(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return printable(nul < 0 ? s : s.subarray(0, nul), len);
}
