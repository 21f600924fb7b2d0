import { hasAt, u32le } from './bytes';
import { QCOW2_MAGIC } from './formats/qcow2';
import { LUKS_MAGIC, QED_MAGIC, VDI_SIGNATURE } from './formats/simple';
import { VHD_COOKIE, VHDX_SIGNATURE } from './formats/vhd';
import { VMDK_COWD_MAGIC, VMDK_SPARSE_MAGIC } from './formats/vmdk';
import { ZSTD_MAGIC } from './tools/zstd';
import { IMAGE_FORMATS, RAW_FORMATS, type ImageFormat } from './types';

/** What converting to raw (forceRaw) leaves as it is: images already raw, and ISOs. */
export const KEPT_AS_IS: readonly ImageFormat[] = Object.freeze([...RAW_FORMATS, 'iso'] as const);

/**
 * Whether an image announced as `format` (the caller's expected format, an image service's disk format) is
 * converted when `forceRaw`: known before its first byte, unlike what readBackAfterDownload tells.
 */
export function convertedByName(format: string | undefined, forceRaw: boolean): boolean {
  if (!forceRaw || format === undefined) return false;
  const f = format as ImageFormat;
  return IMAGE_FORMATS.includes(f) && !KEPT_AS_IS.includes(f);
}

/** Signatures at offset 0 of formats qemu-img converts: qcow/qcow2, VMDK sparse and COWD, VHDX, VHD (dynamic:
 * its footer's copy), QED, LUKS. */
const CONVERTED_AT_0: readonly (string | Buffer)[] = [
  QCOW2_MAGIC,
  VMDK_SPARSE_MAGIC,
  VMDK_COWD_MAGIC,
  VHDX_SIGNATURE,
  VHD_COOKIE,
  QED_MAGIC,
  LUKS_MAGIC,
];

/**
 * Whether an image starting with `head` will be read whole again right after its download: a zstd frame
 * (decompressed, when `zstd`), or, when `forceRaw`, a format converted to raw. A hint for where to write it
 * (see the engine's BlockWriter), not a detection: inspectFormat decides what the image is.
 */
export function readBackAfterDownload(head: Uint8Array, opts: { forceRaw: boolean; zstd: boolean }): boolean {
  const h = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, 512));
  if (opts.zstd && hasAt(h, 0, ZSTD_MAGIC)) return true;
  if (!opts.forceRaw) return false;
  return (
    CONVERTED_AT_0.some((sig) => hasAt(h, 0, sig)) || (h.length >= 0x44 && u32le(h, 0x40) === VDI_SIGNATURE)
  );
}
