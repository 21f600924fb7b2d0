import { guarded, hasAt, printable, safeNumber, u32be, u64be, u8 } from '../bytes';
import { BLOCK_SIZE, type BoundedReader } from '../reader';
import type { Detection } from '../types';

// https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt
export const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb" (qcow too)

const INCOMPAT_NAMES: Record<number, string> = {
  0: 'dirty',
  1: 'corrupt',
  2: 'external data file',
  3: 'compression type',
  4: 'extended L2 entries',
};
/** Incompatible-feature bits we accept (Ironic's rule: bits 0, 1 and 3; bit 2 is the data file). */
const INCOMPAT_DATA_FILE = 2n;
const INCOMPAT_KNOWN_MAX_BIT = 4n; // bits ≥ 4 (extended_l2 and anything newer) are refused

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_TABLE = 0x6803f857;
const EXT_BITMAPS = 0x23852875;
const EXT_CRYPTO = 0x0537be77;
const EXT_DATA_FILE = 0x44415441;

/** qemu accepts cluster_bits 9..21 (512 B – 2 MiB). */
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
/** qemu caps backing file names at 1023 bytes. */
const MAX_NAME = 1023;

export async function detectQcow2(r: BoundedReader): Promise<Detection | null> {
  const h = await r.read(0, 512);
  if (!hasAt(h, 0, QCOW2_MAGIC)) return null;
  const reasons: string[] = [];
  const details: Record<string, unknown> = {};
  let virtualSize = 0;

  await guarded(reasons, details, 'qcow2', async () => {
    const version = u32be(h, 4);
    details.version = version;
    // qcow (v1) shares magic, backing-file fields and the size offset with qcow2.
    const size = safeNumber(u64be(h, 24));
    if (size === undefined) reasons.push('qcow2: virtual size out of range');
    else virtualSize = size;
    const backingOffset = u64be(h, 8);
    const backingSize = u32be(h, 16);
    if (version === 1) {
      reasons.push('qcow2: version 1 (qcow) images are not supported');
      if (backingOffset !== 0n) reasons.push('qcow2: image has a backing file');
      return;
    }
    if (version !== 2 && version !== 3) {
      reasons.push(`qcow2: unsupported version ${version}`);
      return;
    }

    const clusterBits = u32be(h, 20);
    details.clusterBits = clusterBits;
    const cryptMethod = u32be(h, 32);
    details.encryption =
      cryptMethod === 0 ? 'none' : cryptMethod === 1 ? 'aes' : cryptMethod === 2 ? 'luks' : cryptMethod;
    if (cryptMethod > 2) reasons.push(`qcow2: unknown encryption method ${cryptMethod}`);
    const clusterOk = clusterBits >= MIN_CLUSTER_BITS && clusterBits <= MAX_CLUSTER_BITS;
    if (!clusterOk) reasons.push(`qcow2: invalid cluster size (cluster_bits ${clusterBits})`);
    const clusterSize = clusterOk ? 2 ** clusterBits : 0;

    let headerLength = 72;
    if (version === 3) {
      const incompat = u64be(h, 72, 'v3 header');
      details.incompatibleFeatures = `0x${incompat.toString(16)}`;
      if (incompat & (1n << INCOMPAT_DATA_FILE)) details.externalDataFile = true;
      const unknown: string[] = [];
      for (let bit = INCOMPAT_KNOWN_MAX_BIT; bit < 64n; bit++) {
        if (incompat & (1n << bit)) unknown.push(INCOMPAT_NAMES[Number(bit)] ?? `bit ${bit}`);
      }
      if (unknown.length)
        reasons.push(`qcow2: unknown or unsupported incompatible features: ${unknown.join(', ')}`);
      headerLength = u32be(h, 100, 'v3 header');
      details.headerLength = headerLength;
      if (h.length > 104 && headerLength > 104)
        details.compressionType = u8(h, 104) === 0 ? 'zlib' : u8(h, 104) === 1 ? 'zstd' : u8(h, 104);
      if (headerLength < 104) reasons.push(`qcow2: header length ${headerLength} is below the v3 minimum`);
      if (clusterOk && headerLength > clusterSize)
        reasons.push('qcow2: header length exceeds the cluster size');
    }

    if (backingOffset !== 0n) {
      let name = '';
      const off = safeNumber(backingOffset);
      if (
        off !== undefined &&
        backingSize > 0 &&
        backingSize <= MAX_NAME &&
        (!clusterOk || off + backingSize <= clusterSize)
      ) {
        name = printable(await r.read(off, backingSize));
        details.backingFile = name;
      }
      reasons.push(`qcow2: image has a backing file${name ? ` (${JSON.stringify(name)})` : ''}`);
    }

    if (clusterOk && headerLength >= 72 && headerLength <= clusterSize) {
      await walkExtensions(r, headerLength, clusterSize, backingOffset, reasons, details);
    }
    const dataFile = details.externalDataFile;
    if (dataFile !== undefined) {
      reasons.push(
        `qcow2: image uses an external data file${typeof dataFile === 'string' ? ` (${JSON.stringify(dataFile)})` : ''}`,
      );
    }
  });

  return { format: 'qcow2', virtualSize, reasons, details };
}

async function walkExtensions(
  r: BoundedReader,
  headerLength: number,
  clusterSize: number,
  backingOffset: bigint,
  reasons: string[],
  details: Record<string, unknown>,
): Promise<void> {
  // Header extensions: from the end of the header to the end of the first cluster
  // (or to the backing file name, if that comes first), as qemu reads them.
  let end = Math.min(clusterSize, r.size);
  const bo = safeNumber(backingOffset);
  if (bo !== undefined && bo !== 0 && bo < end) end = bo;
  // Usually all within the first 64 KiB: read the whole area (≤ 2 MiB) only if the chain goes on.
  let ext = await r.read(0, Math.min(end, BLOCK_SIZE));
  const need = async (upTo: number) => {
    if (upTo > ext.length && ext.length < end) ext = await r.read(0, end);
  };
  const exts: string[] = [];
  let off = headerLength;
  for (;;) {
    await need(off + 8);
    if (off + 8 > ext.length) break;
    const type = u32be(ext, off);
    const len = u32be(ext, off + 4);
    off += 8;
    if (type === EXT_END) break;
    await need(off + len);
    if (len > ext.length - off) {
      reasons.push('qcow2: header extension overflows the first cluster');
      break;
    }
    switch (type) {
      case EXT_DATA_FILE: {
        details.externalDataFile = printable(ext.subarray(off, off + Math.min(len, MAX_NAME))) || true;
        exts.push('data-file');
        break;
      }
      case EXT_BACKING_FORMAT:
        details.backingFormat = printable(ext.subarray(off, off + Math.min(len, 64)));
        exts.push('backing-format');
        break;
      case EXT_FEATURE_TABLE:
        exts.push('feature-names');
        break;
      case EXT_BITMAPS:
        exts.push('bitmaps');
        break;
      case EXT_CRYPTO:
        exts.push('crypto');
        break;
      default:
        if (exts.length < 64) exts.push(`0x${type.toString(16)}`);
    }
    off += Math.ceil(len / 8) * 8;
  }
  details.extensions = exts;
}
