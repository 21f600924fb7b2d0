import {
  CacheFolderUnusable,
  ConfigError,
  ImageAuthRequired,
  ImageCacheError,
  ImageChecksumAlgorithmFailure,
  ImageChecksumError,
  ImageDownloadFailed,
  ImageNotFound,
  InsufficientDiskSpace,
  InvalidDestination,
  InvalidHref,
  InvalidImage,
  NoWorker,
  OperationAborted,
  QueueTimeout,
  QueueUnavailable,
  UsageError,
  toImageCacheError,
  ImageConvertFailed,
  CredentialsExpired,
  CredentialsNotOwned,
  ImageTooLarge,
} from '@imagecache/errors';

/** Codes of the HTTP layer itself (the engine's codes are in @imagecache/errors). */
export const API_ERROR_CODES = {
  /** The body is not JSON, too large, or of another media type. */
  invalidRequest: 'INVALID_REQUEST',
  /** No job with that id (never existed, or removed by age). */
  jobNotFound: 'JOB_NOT_FOUND',
  /** DELETE of a job that already completed or failed. */
  jobFinished: 'JOB_FINISHED',
  /** No route for that method and path. */
  notFound: 'NOT_FOUND',
  /** Basic auth missing or wrong (board, and /v1 when credentials are set). */
  unauthorized: 'UNAUTHORIZED',
  /**
   * A change through a read-only API, or a request without auth from a non-loopback client or naming a
   * non-loopback Host.
   */
  forbidden: 'FORBIDDEN',
} as const;

/**
 * The HTTP status of an engine error, by class (subclasses follow their parent: UnsafeImage is an InvalidImage).
 *
 * - IMAGE_AUTH_REQUIRED / IMAGE_NOT_AUTHORIZED → 502: the *image source* refused, not this API; 401 stays
 *   reserved for this API's own basic auth (a 401 would make clients retry with other API credentials).
 * - IMAGE_DOWNLOAD_FAILED → 502: the image source failed (network, 5xx); retryable.
 * - ABORTED → 409: the job was cancelled (DELETE /v1/jobs/:id, or a shutdown) while the call waited.
 * - CREDENTIALS_EXPIRED → 410: the job's credentials are gone for good; CREDENTIALS_NOT_OWNED → 403: the job
 *   named another job's credentials.
 * - IMAGE_TOO_LARGE → 422: the image itself can't fit this cache (its size, virtual or decompressed size exceeds
 *   the cache's size or what its filesystem can give); asking again won't help, unlike 507 (space may come).
 * - NO_WORKER → 409: the request conflicts with the deployment's state (no live worker serves that host or
 *   cache), not with Redis (503) nor with the caller's input (400).
 */
export function statusFor(err: ImageCacheError): number {
  if (err instanceof UsageError || err instanceof InvalidHref || err instanceof InvalidDestination)
    return 400;
  if (err instanceof ImageChecksumAlgorithmFailure) return 400;
  if (err instanceof ImageNotFound) return 404;
  if (err instanceof ImageAuthRequired) return 502;
  if (err instanceof ImageDownloadFailed) return 502;
  // The image is the problem (its bytes, its format, or qemu-img could not convert it), not this server.
  if (
    err instanceof ImageChecksumError ||
    err instanceof InvalidImage ||
    err instanceof ImageConvertFailed ||
    err instanceof ImageTooLarge
  )
    return 422;
  if (err instanceof InsufficientDiskSpace) return 507;
  if (err instanceof QueueUnavailable) return 503;
  if (err instanceof QueueTimeout) return 504;
  if (err instanceof OperationAborted || err instanceof NoWorker) return 409;
  if (err instanceof CredentialsExpired) return 410;
  if (err instanceof CredentialsNotOwned) return 403;
  if (err instanceof CacheFolderUnusable || err instanceof ConfigError) return 500;
  return 500;
}

export interface ErrorBody {
  error: {
    code: string;
    message: string;
    retryable?: boolean;
    details?: Record<string, unknown>;
    jobId?: string;
  };
}

/** `{error:{code,message,retryable,details}}` of an engine error, and its status. */
export function engineError(err: unknown, jobId?: string): { status: number; body: ErrorBody } {
  const e = toImageCacheError(err);
  // Unknown errors (not ImageCacheError) may quote anything: only their message goes out, no cause.
  const { code, message, retryable, details } = e.toJSON();
  const safeDetails = Object.fromEntries(Object.entries(details).filter(([k]) => k !== 'cause'));
  return {
    status: statusFor(e),
    body: { error: { code, message, retryable, details: safeDetails, ...(jobId ? { jobId } : {}) } },
  };
}

export function apiError(code: string, message: string, details?: Record<string, unknown>): ErrorBody {
  return { error: { code, message, ...(details ? { details } : {}) } };
}
