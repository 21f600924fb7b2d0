import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageConvertFailed, InsufficientDiskSpace } from '@imagecache/errors';
import type { ImageFormat } from '@imagecache/formats';
import type { FetchProgress } from './result';

export interface PrepareOptions {
  /** Inspect the format and apply the policy (caches of disk images); false for kernels, ramdisks. */
  validate: boolean;
  forceRaw: boolean;
  zstd: boolean;
  permitted: readonly string[];
  expectedFormat?: string;
  growthFactor: number;
  memoryCap: number;
  /** Frees `bytes` in `dir` or throws InsufficientDiskSpace. */
  makeRoom(dir: string, bytes: number): Promise<void>;
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
  // Loaded by the first download: a cache hit needs neither the inspector nor the tools.
  const { checkPolicy, convertToRaw, decompressZstd, inspectFormat, isZstd, RAW_FORMATS } =
    await import('@imagecache/formats');
  /** Formats used as they are, even when raw was asked (an ISO is booted as an ISO). */
  const noConversion: readonly ImageFormat[] = [...RAW_FORMATS, 'iso'];
  const dir = path.dirname(downloaded);
  let file = downloaded;
  let decompressed = false;
  if (opts.zstd && (await isZstd(file))) {
    opts.onProgress?.({ stage: 'decompress' });
    const out = path.join(dir, 'decompressed');
    await decompressZstd(file, out, { signal: opts.signal, href: opts.href });
    await fs.promises.rm(file, { force: true });
    file = out;
    decompressed = true;
  }
  if (!opts.validate) return { file, converted: false, decompressed };

  opts.onProgress?.({ stage: 'inspect' });
  const report = await inspectFormat(file, { signal: opts.signal });
  const format = checkPolicy(report, { permitted: opts.permitted, expectedFormat: opts.expectedFormat });
  if (!opts.forceRaw || noConversion.includes(format)) {
    return { file, format, virtualSize: report.virtualSize, converted: false, decompressed };
  }

  opts.onProgress?.({ stage: 'convert' });
  try {
    await opts.makeRoom(dir, report.virtualSize);
  } catch (err) {
    if (!(err instanceof InsufficientDiskSpace)) throw err;
    // Raw output is sparse: an estimate from the real file size is often enough (spec.md §6).
    await opts.makeRoom(dir, Math.min(Math.ceil(report.actualSize * opts.growthFactor), report.virtualSize));
  }
  const out = path.join(dir, 'converted');
  await convertToRaw(file, out, {
    sourceFormat: format,
    memoryCap: opts.memoryCap,
    signal: opts.signal,
    href: opts.href,
  });
  await fs.promises.rm(file, { force: true });
  const after = await inspectFormat(out, { signal: opts.signal });
  if (!RAW_FORMATS.includes(after.format)) {
    throw new ImageConvertFailed(`converted to raw, but the result is ${after.format}`, { href: opts.href });
  }
  return { file: out, format: after.format, virtualSize: after.virtualSize, converted: true, decompressed };
}
