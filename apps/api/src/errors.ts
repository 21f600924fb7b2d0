import type { FastifyReply } from 'fastify';
import { httpStatusOf, toImageCacheError, type ImageCacheError } from '@imagecache/errors';

/**
 * Errors of the HTTP layer itself, each with its status: the one table of them (the engine's errors own their
 * statuses in @imagecache/errors). README "HTTP API" lists both; apps/api/test/error-table.test.ts holds it to them.
 */
export const API_ERRORS = {
  /**
   * The body is not JSON (400), too large (413) or of another media type (415), a path parameter is too long
   * (414): the framework's status says which, 400 when it says none.
   */
  invalidRequest: { code: 'INVALID_REQUEST', status: 400 },
  /** No job with that id (never existed, or removed by age). */
  jobNotFound: { code: 'JOB_NOT_FOUND', status: 404 },
  /** DELETE of a job that already completed or failed. */
  jobFinished: { code: 'JOB_FINISHED', status: 409 },
  /** No route for that method and path. */
  notFound: { code: 'NOT_FOUND', status: 404 },
  /** Basic auth missing or wrong (board, and /v1 when credentials are set). */
  unauthorized: { code: 'UNAUTHORIZED', status: 401 },
  /**
   * A change through a read-only API, or a request without auth from a non-loopback client or naming a
   * non-loopback Host.
   */
  forbidden: { code: 'FORBIDDEN', status: 403 },
} as const;
export type ApiErrorName = keyof typeof API_ERRORS;

/** The codes of API_ERRORS by name. */
export const API_ERROR_CODES = Object.fromEntries(
  Object.entries(API_ERRORS).map(([name, e]) => [name, e.code]),
) as { readonly [K in ApiErrorName]: (typeof API_ERRORS)[K]['code'] };

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

/** Sends an error of the HTTP layer with its status (or `status`, the framework's, for INVALID_REQUEST). */
export function sendApiError(
  reply: FastifyReply,
  name: ApiErrorName,
  message: string,
  details?: Record<string, unknown>,
  status: number = API_ERRORS[name].status,
): FastifyReply {
  return reply.code(status).send(apiError(API_ERRORS[name].code, message, details));
}
