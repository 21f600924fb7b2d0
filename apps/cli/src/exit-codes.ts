import { ImageCacheError } from '@imagecache/errors';

/**
 * The CLI's exit status per error code: public and stable (README "Exit status").
 * 0 is success; 1 is an error that is none of these (a bug, or an unexpected system error).
 */
export const EXIT_CODES: Readonly<Record<string, number>> = Object.freeze({
  USAGE_ERROR: 2,
  CONFIG_ERROR: 3,
  INVALID_HREF: 10,
  IMAGE_REF_VALIDATION_FAILED: 11,
  INVALID_DESTINATION: 12,
  IMAGE_NOT_FOUND: 20,
  IMAGE_AUTH_REQUIRED: 21,
  IMAGE_DOWNLOAD_FAILED: 22,
  IMAGE_NOT_AUTHORIZED: 23,
  CREDENTIALS_EXPIRED: 24,
  CREDENTIALS_NOT_OWNED: 25,
  REDIRECT_REFUSED: 26,
  IMAGE_CHECKSUM_ERROR: 30,
  IMAGE_CHECKSUM_ALGORITHM_FAILURE: 31,
  INVALID_IMAGE: 40,
  UNSAFE_IMAGE: 41,
  IMAGE_FORMAT_NOT_PERMITTED: 42,
  IMAGE_FORMAT_MISMATCH: 43,
  IMAGE_CONVERT_FAILED: 44,
  IMAGE_TOO_LARGE: 45,
  INSUFFICIENT_DISK_SPACE: 50,
  CACHE_FOLDER_UNUSABLE: 51,
  QUEUE_UNAVAILABLE: 60,
  QUEUE_TIMEOUT: 61,
  NO_WORKER: 62,
  ABORTED: 130,
});

export function exitCodeFor(err: unknown): number {
  return err instanceof ImageCacheError ? (EXIT_CODES[err.code] ?? 1) : 1;
}
