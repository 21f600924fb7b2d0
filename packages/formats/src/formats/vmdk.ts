import { guarded, hasAt, printable, safeMul, safeNumber, u32le, u64le } from '../bytes';
import type { BoundedReader } from '../reader';
import type { Detection } from '../types';

export const VMDK_SPARSE_MAGIC = 'KDMV';
export const VMDK_COWD_MAGIC = 'COWD';

// VMDK: the hosted sparse extent ("KDMV" header + embedded descriptor), the old COWD sparse
// format, and plain text descriptor files. Only monolithicSparse and streamOptimized with
// their data in the same file are accepted.
const GD_AT_END = 0xffffffffffffffffn;
const MARKER_EOS = 0;
const MARKER_FOOTER = 3;
/** qemu and oslo cap the embedded descriptor at 1 MiB − 1. */
const DESC_MAX = 1024 * 1024 - 1;
/** qemu looks for parentFileNameHint in this many bytes at offset 0x200 (DESC_SIZE). */
const QEMU_DESC_SIZE = 20 * 512;
/** How much of a text descriptor file we look at. */
const TEXT_WINDOW = 64 * 1024;
const ALLOWED_TYPES = ['monolithicsparse', 'streamoptimized'];
const EXTENT_ACCESS = ['rw', 'rdonly', 'noaccess'];

interface SparseHeader {
  version: number;
  capacity: bigint;
  descOffset: bigint;
  descSize: bigint;
  gdOffset: bigint;
}

function sparseHeader(b: Buffer, at: number): SparseHeader {
  return {
    version: u32le(b, at + 4),
    capacity: u64le(b, at + 12),
    descOffset: u64le(b, at + 28),
    descSize: u64le(b, at + 36),
    gdOffset: u64le(b, at + 56),
  };
}

export async function detectVmdk(r: BoundedReader): Promise<Detection | null> {
  const h = await r.read(0, 512);
  if (hasAt(h, 0, VMDK_SPARSE_MAGIC)) return sparse(r, h);
  if (hasAt(h, 0, VMDK_COWD_MAGIC)) {
    const reasons = ['vmdk: VMDK3 (COWD) sparse extents are not supported'];
    const details: Record<string, unknown> = { subformat: 'COWD' };
    let virtualSize = 0;
    await guarded(reasons, details, 'vmdk', () => {
      virtualSize = safeMul(u32le(h, 12), 512) ?? 0;
    });
    return { format: 'vmdk', virtualSize, reasons, details };
  }
  if (!looksLikeText(h)) return null;
  const window = await r.read(0, TEXT_WINDOW);
  const nul = window.indexOf(0);
  const text = window.subarray(0, nul < 0 ? window.length : nul).toString('latin1');
  if (!qemuProbesDescriptor(text) && !/^[ \t]*createType[ \t]*=/im.test(text)) return null;
  const reasons = ['vmdk: descriptor file without data (its extents are other files)'];
  const details: Record<string, unknown> = { descriptorFile: true };
  const d = parseDescriptor(text, reasons);
  details.createType = d.createType;
  return {
    format: 'vmdk',
    virtualSize: d.extentSectors === undefined ? 0 : (safeMul(d.extentSectors, 512) ?? 0),
    reasons,
    details,
  };
}

async function sparse(r: BoundedReader, h: Buffer): Promise<Detection> {
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;
  await guarded(reasons, details, 'vmdk', async () => {
    const header = sparseHeader(h, 0);
    let eff = header;
    details.version = header.version;
    if (header.version < 1 || header.version > 3)
      reasons.push(`vmdk: unsupported sparse header version ${header.version}`);
    if (header.gdOffset === GD_AT_END) {
      // The footer takes precedence over the header (qemu reads it at end − 1536).
      details.footer = true;
      const start = Math.floor(r.size / 512) * 512 - 1536;
      const tail = start >= 512 ? await r.read(start, 1536) : Buffer.alloc(0);
      if (tail.length < 1536) reasons.push('vmdk: footer missing');
      else {
        const footerReasons = checkFooter(tail, header);
        reasons.push(...footerReasons);
        if (!footerReasons.length) eff = sparseHeader(tail, 512);
      }
    }
    const size = safeNumber(eff.capacity * 512n);
    if (size === undefined) reasons.push('vmdk: virtual size out of range');
    else virtualSize = size;
    if (eff.capacity === 0n)
      reasons.push('vmdk: sparse header with zero capacity (descriptor names other extents)');
    if (eff.descOffset !== 1n) {
      reasons.push('vmdk: embedded descriptor is not at sector 1');
      return;
    }
    const descLen = safeNumber(eff.descSize * 512n);
    if (!descLen) {
      reasons.push('vmdk: no embedded descriptor');
      return;
    }
    const desc = await r.read(512, Math.min(descLen, DESC_MAX));
    const nul = desc.indexOf(0);
    const text = desc.subarray(0, nul < 0 ? desc.length : nul).toString('latin1');
    const d = parseDescriptor(text, reasons);
    details.createType = d.createType;
    // qemu takes parentFileNameHint (anywhere in the first 10 KiB at 0x200) as a backing file.
    const qemuDesc =
      desc.length >= QEMU_DESC_SIZE ? desc.subarray(0, QEMU_DESC_SIZE) : await r.read(512, QEMU_DESC_SIZE);
    if (/parentFileNameHint/i.test(qemuDesc.toString('latin1'))) {
      reasons.push('vmdk: descriptor names a parent image (parentFileNameHint)');
    }
  });
  return { format: 'vmdk', virtualSize, reasons, details };
}

function checkFooter(tail: Buffer, header: SparseHeader): string[] {
  const out: string[] = [];
  const marker = (at: number) => ({
    val: u64le(tail, at),
    size: u32le(tail, at + 8),
    type: u32le(tail, at + 12),
    zero: tail.subarray(at + 16, at + 512).every((b) => b === 0),
  });
  const fm = marker(0);
  if (fm.size !== 0 || fm.type !== MARKER_FOOTER || !fm.zero) out.push('vmdk: footer marker is invalid');
  if (!hasAt(tail, 512, VMDK_SPARSE_MAGIC)) {
    out.push('vmdk: footer signature missing');
    return out;
  }
  const f = sparseHeader(tail, 512);
  if (f.version !== header.version) out.push('vmdk: header and footer versions differ');
  if (f.descOffset !== header.descOffset || f.descSize !== header.descSize) {
    out.push('vmdk: footer names a different descriptor than the header');
  }
  if (f.gdOffset === GD_AT_END) out.push('vmdk: footer points to another footer');
  const eos = marker(1024);
  if (eos.val !== 0n || eos.size !== 0 || eos.type !== MARKER_EOS || !eos.zero) {
    out.push('vmdk: end-of-stream marker is invalid');
  }
  return out;
}

interface Descriptor {
  createType?: string;
  extentSectors?: bigint;
}

/** Cautious line-by-line parse (oslo's rules): anything not understood is refused. */
function parseDescriptor(text: string, reasons: string[]): Descriptor {
  const out: Descriptor = {};
  if (/[^\t\r\n\x20-\x7e]/.test(text)) {
    reasons.push('vmdk: descriptor is not ASCII text');
    return out;
  }
  let extents = 0;
  let badLine = false;
  let slash = false;
  let sectors = 0n;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const lower = line.toLowerCase();
    if (lower.startsWith('ddb')) continue;
    const eq = line.indexOf('=');
    if (eq > 0 && !/\s/.test(line.slice(0, eq))) {
      const key = line.slice(0, eq).toLowerCase();
      if (key === 'createtype')
        out.createType = line
          .slice(eq + 1)
          .trim()
          .replace(/^"(.*)"$/, '$1')
          .slice(0, 64);
      continue;
    }
    const first = lower.split(/\s+/)[0] ?? '';
    if (EXTENT_ACCESS.includes(first)) {
      extents++;
      if (line.includes('/')) slash = true;
      const n = line.split(/\s+/)[1];
      if (n && /^\d{1,19}$/.test(n)) sectors += BigInt(n);
      continue;
    }
    badLine = true;
  }
  if (!out.createType) reasons.push('vmdk: descriptor has no createType');
  else if (!ALLOWED_TYPES.includes(out.createType.toLowerCase())) {
    reasons.push(
      `vmdk: createType ${JSON.stringify(printable(out.createType))} is not monolithicSparse or streamOptimized`,
    );
  }
  if (badLine) reasons.push('vmdk: descriptor has lines that are not understood');
  if (slash) reasons.push('vmdk: an extent path contains "/"');
  if (!extents) reasons.push('vmdk: descriptor defines no extent');
  out.extentSectors = sectors;
  return out;
}

/** First bytes are printable ASCII or whitespace (oslo's test for a text descriptor file). */
function looksLikeText(h: Buffer): boolean {
  if (h.length < 4) return false;
  for (const b of h) {
    if (b === 0) break;
    if (!(b === 9 || b === 10 || b === 13 || (b >= 0x20 && b < 0x7f))) return false;
  }
  return h[0] !== 0;
}

/** qemu's vmdk_probe for text: comments and blank lines, then `version=1|2|3`. */
function qemuProbesDescriptor(text: string): boolean {
  for (const line of text.split('\n')) {
    const l = line.replace(/\r$/, '');
    if (l.startsWith('#')) continue;
    if (/^ *$/.test(l)) continue;
    return /^version=[123]$/.test(l);
  }
  return false;
}
