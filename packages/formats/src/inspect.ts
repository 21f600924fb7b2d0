import { closeSync, constants, fstatSync, openSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ImageCacheError, InvalidImage, OperationAborted } from '@imagecache/errors';
import { detectIso, detectPartitionTable } from './formats/disk';
import { detectQcow2 } from './formats/qcow2';
import { detectLuks, detectQed, detectVdi } from './formats/simple';
import { detectVhd, detectVhdx } from './formats/vhd';
import { detectVmdk } from './formats/vmdk';
import { BoundedReader } from './reader';
import type { Detection, FormatReport, InspectOptions } from './types';

type Detector = (r: BoundedReader) => Promise<Detection | null>;

/** Every detector runs on every file; the order gives the reported format when several match. */
const DETECTORS: readonly Detector[] = [
  detectQcow2,
  detectQed,
  detectVhdx,
  detectVmdk,
  detectVdi,
  detectLuks,
  detectVhd,
  detectIso,
  detectPartitionTable,
];

/**
 * Detects an image's real format from its bytes and runs the safety checks of spec.md §6.
 *
 * Reads at most a few hundred KiB (never more than MAX_BYTES_READ) in bounded, cached pieces,
 * whatever the file's size. Whatever the bytes, it resolves to a report: malformed headers of a
 * recognised format give an unsafe report. It rejects only with ImageCacheErrors: InvalidImage
 * (cannot open/read, not a regular file) or OperationAborted.
 *
 * A path is opened read-only and closed afterwards; a FileHandle is read with positioned reads
 * and left open.
 */
export async function inspectFormat(
  file: string | FileHandle,
  opts: InspectOptions = {},
): Promise<FormatReport> {
  const { signal } = opts;
  const aborted = () => new OperationAborted('image inspection aborted', { cause: signal?.reason });
  if (signal?.aborted) throw aborted();
  // A path is opened, read and closed on this thread (see BoundedReader): a handful of system calls.
  let fd: number | FileHandle;
  if (typeof file === 'string') {
    try {
      // O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
      fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw new InvalidImage(
        `cannot open the image: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        {
          path: file,
          cause: err,
        },
      );
    }
  } else {
    fd = file;
  }
  try {
    let st: Stats;
    try {
      st = typeof fd === 'number' ? fstatSync(fd) : await fd.stat();
    } catch (err) {
      throw new InvalidImage(`cannot stat the image: ${(err as Error).message}`, { cause: err });
    }
    if (!st.isFile())
      throw new InvalidImage(
        'the image is not a regular file',
        typeof file === 'string' ? { path: file } : {},
      );
    const reader = new BoundedReader(fd, st.size, signal);
    const found: Detection[] = [];
    for (const detect of DETECTORS) {
      const d = await detect(reader);
      if (d) found.push(d);
    }
    if (signal?.aborted) throw aborted();
    return decide(found, st.size, st.blocks * 512, reader.bytesRead);
  } catch (err) {
    if (err instanceof ImageCacheError) throw err;
    // Never expected: a detector bug. Fail closed with our own type.
    throw new InvalidImage(`image inspection failed: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
    });
  } finally {
    if (typeof fd === 'number') {
      try {
        closeSync(fd);
      } catch {
        // nothing to do: the inspection's answer stands
      }
    }
  }
}

/** One format, or the hybrid rules, or "several formats at once" (unsafe). Exported for tests. */
export function decide(found: Detection[], size: number, allocated: number, bytesRead: number): FormatReport {
  const formats = found.map((d) => d.format);
  const base = { actualSize: size };
  const extra = { formats, bytesRead, allocatedBytes: allocated };
  if (!found.length) {
    return {
      format: 'raw',
      virtualSize: size,
      ...base,
      safe: true,
      unsafeReasons: [],
      details: { ...extra, formats: ['raw'] },
    };
  }
  const report = (d: Detection, reasons: string[], more: Record<string, unknown> = {}): FormatReport => ({
    format: d.format,
    virtualSize: d.virtualSize,
    ...base,
    safe: reasons.length === 0,
    unsafeReasons: reasons,
    details: { ...d.details, ...more, ...extra },
  });
  const [first] = found as [Detection];
  if (found.length === 1) return report(first, first.reasons);

  const disk = found.find((d) => d.format === 'gpt');
  const others = found.filter((d) => d.format !== 'gpt');
  if (disk && others.length === 1) {
    const [only] = others as [Detection];
    // A bootable hybrid ISO carries an MBR or GPT in its system area: it is an ISO (Ironic, bug 2091611).
    if (only.format === 'iso')
      return report(only, only.reasons, { hybrid: disk.details.partitionTable ?? 'mbr' });
    // A fixed VHD is a raw disk plus a trailing footer: its partition table is the disk's content.
    if (only.format === 'vhd' && only.details.footerAt === 'end' && only.details.diskType === 'fixed') {
      return report(only, only.reasons, { partitionTable: disk.details.partitionTable ?? 'mbr' });
    }
  }
  const reasons = [`more than one format detected: ${formats.join(', ')}`];
  for (const d of found) reasons.push(...d.reasons);
  return report(first, reasons);
}
