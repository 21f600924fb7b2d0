import { httpStatusOf, toImageCacheError, type ImageCacheError } from '@imagecache/errors';

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
 * The HTTP status of an engine error: each error class owns it (`httpStatus`, in @imagecache/errors, where each
 * choice is explained); subclasses made elsewhere follow their parent.
 */
export function statusFor(err: ImageCacheError): number {
  return httpStatusOf(err);
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
