import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageConvertFailed, InsufficientDiskSpace } from '@imagecache/errors';
// With the engine: every miss inspects its image (the tools load `node:child_process` only when they run).
import {
  checkPolicy,
  convertToRaw,
  decompressZstd,
  IMAGE_FORMATS,
  inspectFormat,
  isZstd,
  KEPT_AS_IS,
  RAW_FORMATS,
  zstdDeclaredSize,
  type ImageFormat,
} from '@imagecache/formats';
import type { FetchProgress } from './result';
import { byteBound, maxWriteBytes, sizeBound, tooLarge, type SpaceBudget } from './write-bound';

/** What qemu-img may write between two looks at its output (at most a quarter of the room is kept back). */
export const CONVERT_SLACK_BYTES = 32 << 20;

export interface PrepareOptions {
  /** Inspect the format and apply the policy (caches of disk images); false for kernels, ramdisks. */
  validate: boolean;
  forceRaw: boolean;
  zstd: boolean;
  permitted: readonly string[];
  expectedFormat?: string;
  growthFactor: number;
  memoryCap: number;
  /** qemu-img writes its output straight to the disk (see convertToRaw). */
  direct: boolean;
  /** Frees `bytes` in `dir` or throws InsufficientDiskSpace. */
  makeRoom(dir: string, bytes: number): Promise<void>;
  /** The budget for a write of `size` bytes: ImageTooLarge if it can't fit, room made if it needs it. */
  room(what: 'decompressed', size: number | undefined): Promise<SpaceBudget>;
  /** What a write of `size` may take now (the cache's size, free bytes, evictable bytes when it needs them). */
  budget(size?: number): Promise<SpaceBudget>;
  signal?: AbortSignal;
  href: string;
  onProgress?: (p: FetchProgress) => void;
}

export interface PreparedImage {
  file: string;
  format?: ImageFormat;
  virtualSize?: number;
  converted: boolean;
  decompressed: boolean;
}

/**
 * What happens between a verified download and its publication (spec.md §2.8, §4, §6): zstd decompression,
 * inspection and policy, conversion to raw. Every file it makes is in `file`'s folder (work in progress).
 */
export async function prepareImage(downloaded: string, opts: PrepareOptions): Promise<PreparedImage> {
  const dir = path.dirname(downloaded);
  let file = downloaded;
  let decompressed = false;
  if (opts.zstd && (await isZstd(file))) {
    opts.onProgress?.({ stage: 'decompress' });
    const out = path.join(dir, 'decompressed');
    // A bomb that says what it expands to is refused before a byte is written; one that doesn't is stopped
    // by the kernel at the bound.
    const b = await opts.room('decompressed', await zstdDeclaredSize(file));
    const bound = byteBound(b, 'decompressed', maxWriteBytes(b), opts.href);
    await decompressZstd(file, out, { signal: opts.signal, href: opts.href, bound });
    await fs.promises.rm(file, { force: true });
    file = out;
    decompressed = true;
  }
  // Without validation (kernels, ramdisks) nothing is inspected, unless it is to be converted: qemu-img never
  // sees an image the inspector has not passed as safe (spec.md §6).
  if (!opts.validate && !opts.forceRaw) return { file, converted: false, decompressed };

  opts.onProgress?.({ stage: 'inspect' });
  const report = await inspectFormat(file, { signal: opts.signal });
  const format = opts.validate
    ? checkPolicy(report, { permitted: opts.permitted, expectedFormat: opts.expectedFormat })
    : checkPolicy(report, { permitted: IMAGE_FORMATS });
  const facts = opts.validate ? { format, virtualSize: report.virtualSize } : {};
  // An ISO is used as it is, even when raw was asked (it is booted as an ISO).
  if (!opts.forceRaw || KEPT_AS_IS.includes(format)) {
    return { file, ...facts, converted: false, decompressed };
  }

  opts.onProgress?.({ stage: 'convert' });
  const out = path.join(dir, 'converted');
  const bound = await roomToConvert(dir, report.virtualSize, report.actualSize, opts);
  await convertToRaw(file, out, {
    sourceFormat: format,
    memoryCap: opts.memoryCap,
    direct: opts.direct,
    signal: opts.signal,
    href: opts.href,
    bound,
  });
  await fs.promises.rm(file, { force: true });
  const after = await inspectFormat(out, { signal: opts.signal });
  if (!RAW_FORMATS.includes(after.format)) {
    throw new ImageConvertFailed(`converted to raw, but the result is ${after.format}`, { href: opts.href });
  }
  return { file: out, format: after.format, virtualSize: after.virtualSize, converted: true, decompressed };
}

/**
 * Room for a conversion (spec.md §6): an image whose virtual size exceeds the cache's size is refused before
 * anything is evicted. Room is made for the virtual size when eviction can give it, else for the estimate
 * (raw output is sparse); when not even that can be had, nothing is evicted. The output is then bounded by
 * what is free (allocated bytes, watched while qemu-img runs).
 */
async function roomToConvert(dir: string, virtualSize: number, actualSize: number, opts: PrepareOptions) {
  let b = await opts.budget(virtualSize);
  if (virtualSize > sizeBound(b)) throw tooLarge(b, 'virtual', virtualSize, b.cacheSize, opts.href);
  const estimate = Math.min(Math.ceil(actualSize * opts.growthFactor), virtualSize);
  const reachable = b.free + (b.evictable ?? 0);
  const wanted = virtualSize < reachable ? virtualSize : estimate;
  if (wanted >= reachable) throw new InsufficientDiskSpace(dir, wanted, b.free, { href: opts.href });
  await opts.makeRoom(dir, wanted + (b.reserved ?? 0));
  b = await opts.budget();
  // qemu-img's output is looked at every few ms, and it writes fast: stop it with some slack left.
  const room = maxWriteBytes(b);
  return byteBound(b, 'converted', room - Math.min(CONVERT_SLACK_BYTES, Math.floor(room / 4)), opts.href);
}
