/** Every format the inspector tells apart. `gpt` also stands for plain MBR (DOS) partitioned disks. */
export type ImageFormat = 'raw' | 'qcow2' | 'qed' | 'vhd' | 'vhdx' | 'vmdk' | 'vdi' | 'iso' | 'gpt' | 'luks';

export const IMAGE_FORMATS: readonly ImageFormat[] = Object.freeze([
  'raw',
  'qcow2',
  'qed',
  'vhd',
  'vhdx',
  'vmdk',
  'vdi',
  'iso',
  'gpt',
  'luks',
] as const);

/** Formats that are a whole-disk raw image as far as a consumer is concerned. */
export const RAW_FORMATS: readonly ImageFormat[] = Object.freeze(['raw', 'gpt'] as const);

/** spec.md §6 default of `permittedFormats`. */
export const DEFAULT_PERMITTED_FORMATS: readonly ImageFormat[] = Object.freeze([
  'raw',
  'gpt',
  'qcow2',
  'iso',
] as const);

export interface FormatReport {
  /** The format detected from the bytes; `raw` when nothing else matched. */
  format: ImageFormat;
  /** Size of the disk the image describes, in bytes (from the headers; the file size for raw, gpt and iso). */
  virtualSize: number;
  /** The file's size (`st_size`) in bytes. The allocated size of a sparse file is `details.allocatedBytes`. */
  actualSize: number;
  /** False when any safety check failed; `unsafeReasons` then says why. */
  safe: boolean;
  unsafeReasons: string[];
  /**
   * Format-specific facts (versions, sub-formats, flags), plus always:
   * `bytesRead` (bytes the inspector read from the file), `allocatedBytes` (st_blocks × 512)
   * and `formats` (every format whose signature matched, before the hybrid rules).
   */
  details?: Record<string, unknown>;
}

export interface InspectOptions {
  signal?: AbortSignal;
}

/** What one format detector found. Internal, but exported for tests and tools. */
export interface Detection {
  format: Exclude<ImageFormat, 'raw'>;
  virtualSize: number;
  reasons: string[];
  details: Record<string, unknown>;
}
