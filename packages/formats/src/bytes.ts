import { ImageCacheError } from '@imagecache/errors';

/** Thrown by the field readers when a header is shorter than the field; detectors turn it into a reason. */
export class Truncated extends Error {
  constructor(what: string) {
    super(`truncated ${what}`);
    this.name = 'Truncated';
  }
}

function need(buf: Buffer, off: number, len: number, what: string): void {
  if (!Number.isSafeInteger(off) || off < 0 || off + len > buf.length) throw new Truncated(what);
}

export const u8 = (b: Buffer, o: number, what = 'header'): number => (need(b, o, 1, what), b[o] as number);
export const u16le = (b: Buffer, o: number, what = 'header'): number => (
  need(b, o, 2, what),
  b.readUInt16LE(o)
);
export const u16be = (b: Buffer, o: number, what = 'header'): number => (
  need(b, o, 2, what),
  b.readUInt16BE(o)
);
export const u32le = (b: Buffer, o: number, what = 'header'): number => (
  need(b, o, 4, what),
  b.readUInt32LE(o)
);
export const u32be = (b: Buffer, o: number, what = 'header'): number => (
  need(b, o, 4, what),
  b.readUInt32BE(o)
);
export const u64le = (b: Buffer, o: number, what = 'header'): bigint => (
  need(b, o, 8, what),
  b.readBigUInt64LE(o)
);
export const u64be = (b: Buffer, o: number, what = 'header'): bigint => (
  need(b, o, 8, what),
  b.readBigUInt64BE(o)
);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit field as a number, or undefined when it does not fit in a safe integer. */
export function safeNumber(v: bigint): number | undefined {
  return v >= 0n && v <= MAX_SAFE ? Number(v) : undefined;
}

/** a × b as a safe integer, or undefined on overflow. */
export function safeMul(a: number | bigint, b: number | bigint): number | undefined {
  return safeNumber(BigInt(a) * BigInt(b));
}

/** True when `buf` holds `sig` at `off` (false when out of range). */
export function hasAt(buf: Buffer, off: number, sig: Buffer | string): boolean {
  const s = typeof sig === 'string' ? Buffer.from(sig, 'latin1') : sig;
  if (off < 0 || off + s.length > buf.length) return false;
  return buf.compare(s, 0, s.length, off, off + s.length) === 0;
}

/** Printable-ASCII rendering of untrusted bytes for messages: control/non-ASCII → '?', capped. */
export function printable(bytes: Buffer | string, max = 128): string {
  const s = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** A Microsoft GUID (mixed-endian) as the usual upper-case string. */
export function guid(b: Buffer, o: number): string {
  need(b, o, 16, 'GUID');
  const hex = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, '0');
  const tail = b
    .subarray(o + 8, o + 16)
    .toString('hex')
    .toUpperCase();
  return `${hex(b.readUInt32LE(o), 8)}-${hex(b.readUInt16LE(o + 4), 4)}-${hex(b.readUInt16LE(o + 6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/**
 * Runs a header parser; a Truncated or any unexpected error becomes a reason (fail closed)
 * instead of escaping. ImageCacheErrors (I/O, abort, read budget) pass through.
 */
export async function guarded(
  reasons: string[],
  details: Record<string, unknown>,
  fmt: string,
  fn: () => Promise<void> | void,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ImageCacheError) throw err;
    if (err instanceof Truncated) reasons.push(`${fmt}: ${err.message}`);
    else {
      reasons.push(`${fmt}: malformed header`);
      details.parseError = String((err as Error)?.message ?? err);
    }
  }
}
