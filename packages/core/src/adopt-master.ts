import { hashFile, type ExpectedChecksum } from '@imagecache/checksum';
import { checkPolicy, inspectFormat, isZstd, type ImageFormat } from '@imagecache/formats';

export interface AdoptOptions {
  /** What the bytes must hash to (the caller's checksum, the source's own); at least one. */
  checks: readonly ExpectedChecksum[];
  /** Inspect the format and apply the policy, as a download would be. */
  validate: boolean;
  /** The cache decompresses zstd downloads: a compressed master is not what a download would have made. */
  zstd: boolean;
  permitted: readonly string[];
  expectedFormat?: string;
  signal?: AbortSignal;
}

export type Adoption =
  { ok: true; format?: ImageFormat; virtualSize?: number } | { ok: false; reason: string };

/**
 * Verifies a master that has no metadata (one found in an adopted Ironic folder) as if it had just been
 * downloaded: the caller's checksum over its bytes, then the format policy. Done once: the caller then records
 * its metadata. Never throws for a master that merely fails: it says why, and the master is set aside.
 */
export async function verifyAdoptedMaster(file: string, opts: AdoptOptions): Promise<Adoption> {
  if (opts.checks.length === 0) return { ok: false, reason: 'no checksum to verify it against' };
  for (const c of opts.checks) {
    const digest = await hashFile(file, c.algo, { signal: opts.signal });
    if (digest.toLowerCase() !== c.value.toLowerCase())
      return { ok: false, reason: `its ${c.algo} does not match the checksum given` };
  }
  if (opts.zstd && (await isZstd(file))) return { ok: false, reason: 'it is still zstd-compressed' };
  if (!opts.validate) return { ok: true };
  const report = await inspectFormat(file, { signal: opts.signal });
  try {
    const format = checkPolicy(report, { permitted: opts.permitted, expectedFormat: opts.expectedFormat });
    return { ok: true, format, virtualSize: report.virtualSize };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
