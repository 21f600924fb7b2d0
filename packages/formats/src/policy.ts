import { ImageFormatMismatch, ImageFormatNotPermitted, UnsafeImage } from '@imagecache/errors';
import { DEFAULT_PERMITTED_FORMATS, type FormatReport, type ImageFormat } from './types';

export interface PolicyOptions {
  /** Formats a cache accepts (spec.md §6; default raw, gpt, qcow2, iso). `raw` implies `gpt`. */
  permitted?: readonly string[];
  /** The format the caller declared (Glance disk_format, image_disk_format…). */
  expectedFormat?: string;
}

/** The permitted list as a set, with `gpt` added whenever `raw` is in it. */
export function permittedFormats(permitted: readonly string[] = DEFAULT_PERMITTED_FORMATS): Set<string> {
  const set = new Set(permitted);
  if (set.has('raw')) set.add('gpt');
  return set;
}

export function isFormatPermitted(
  format: string,
  permitted: readonly string[] = DEFAULT_PERMITTED_FORMATS,
): boolean {
  return permittedFormats(permitted).has(format);
}

/** `aki`/`ari` (kernel/ramdisk types) match anything; `raw` matches raw or gpt; otherwise equality. */
export function formatMatches(actual: string, expected: string): boolean {
  if (expected === 'aki' || expected === 'ari') return true;
  if (expected === 'raw') return actual === 'raw' || actual === 'gpt';
  return actual === expected;
}

/**
 * Applies spec.md §6 to an inspection report, in Ironic's order: safety, then the permitted
 * list, then the declared format. Throws UnsafeImage, ImageFormatNotPermitted or
 * ImageFormatMismatch (all InvalidImage); returns the format when the image may be used.
 */
export function checkPolicy(report: FormatReport, opts: PolicyOptions = {}): ImageFormat {
  const { format } = report;
  if (!report.safe) {
    const reasons = report.unsafeReasons.length ? report.unsafeReasons : ['unsafe image'];
    throw new UnsafeImage(`image (${format}) failed the safety checks: ${reasons.join('; ')}`, {
      format,
      reasons,
    });
  }
  const permitted = permittedFormats(opts.permitted);
  if (!permitted.has(format)) {
    throw new ImageFormatNotPermitted(
      `image format ${format} is not permitted (permitted: ${[...permitted].join(', ')})`,
      {
        format,
        permitted: [...permitted],
      },
    );
  }
  if (opts.expectedFormat !== undefined && !formatMatches(format, opts.expectedFormat)) {
    throw new ImageFormatMismatch(
      `image is ${format} but was declared ${JSON.stringify(opts.expectedFormat)}`,
      {
        format,
        expectedFormat: opts.expectedFormat,
      },
    );
  }
  return format;
}

/** The qemu-img driver name for a detected format (`-f`): vhd → vpc; gpt and iso are raw. */
export function qemuFormatName(format: ImageFormat): string {
  if (format === 'vhd') return 'vpc';
  if (format === 'gpt' || format === 'iso') return 'raw';
  return format;
}
