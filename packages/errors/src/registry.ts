import * as E from './errors';
import { redactHref } from './redact';

export type ErrorClass = {
  readonly code: string;
  readonly exitStatus: number;
  readonly httpStatus: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  new (...args: any[]): E.ImageCacheError;
};

/** Every public error class by its code: the one place codes are listed (their statuses are on the classes). */
export const ERROR_CLASSES: readonly ErrorClass[] = [
  E.ImageCacheError,
  E.InvalidHref,
  E.ImageRefValidationFailed,
  E.InvalidDestination,
  E.UsageError,
  E.ImageNotFound,
  E.ImageAuthRequired,
  E.ImageNotAuthorized,
  E.ImageDownloadFailed,
  E.RedirectRefused,
  E.ImageChecksumError,
  E.ImageChecksumAlgorithmFailure,
  E.InvalidImage,
  E.UnsafeImage,
  E.ImageFormatNotPermitted,
  E.ImageFormatMismatch,
  E.ImageConvertFailed,
  E.InsufficientDiskSpace,
  E.ImageTooLarge,
  E.CacheFolderUnusable,
  E.ConfigError,
  E.OperationAborted,
  E.QueueUnavailable,
  E.QueueTimeout,
  E.CredentialsExpired,
  E.CredentialsNotOwned,
  E.NoWorker,
  E.PeerTokenInvalid,
];

const byCode = new Map<string, ErrorClass>(ERROR_CLASSES.map((c) => [c.code, c]));

export function errorClassFor(code: string): ErrorClass | undefined {
  return byCode.get(code);
}

/** The class of a thrown value: its own for an ImageCacheError (subclasses made elsewhere follow their parent). */
function classOf(err: unknown): ErrorClass {
  return err instanceof E.ImageCacheError ? (err.constructor as ErrorClass) : E.ImageCacheError;
}

/** The CLI's exit status for anything thrown (1 for what is not an ImageCacheError). */
export function exitStatusOf(err: unknown): number {
  return classOf(err).exitStatus;
}

/** The HTTP API's status for anything thrown (500 for what is not an ImageCacheError). */
export function httpStatusOf(err: unknown): number {
  return classOf(err).httpStatus;
}

/** Rebuilds a typed error from its serialised form (the distributed mode's way back to the caller). */
export function deserializeError(s: E.SerializedError): E.ImageCacheError {
  const cls = byCode.get(s.code) ?? E.ImageCacheError;
  const details = { ...s.details };
  let err: E.ImageCacheError;
  if (cls === (E.InsufficientDiskSpace as ErrorClass)) {
    err = new E.InsufficientDiskSpace(String(details.path), Number(details.required), Number(details.free));
  } else if (cls === (E.ImageDownloadFailed as ErrorClass)) {
    err = new E.ImageDownloadFailed(s.message, { ...details, retryable: s.retryable });
  } else {
    err = new cls(s.message, details);
  }
  err.message = s.message;
  return err;
}

/** Wraps anything thrown into an ImageCacheError (unknown errors become the base class). */
export function toImageCacheError(err: unknown, href?: string): E.ImageCacheError {
  if (err instanceof E.ImageCacheError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new E.ImageCacheError(message, { href, cause: err });
}

/** The same error, of the same class, naming `href` (credentials removed) if it named none. */
export function withHref(err: E.ImageCacheError, href: string): E.ImageCacheError {
  if (err.href !== undefined) return err;
  const safe = redactHref(href);
  const s = err.toJSON();
  const copy = deserializeError({
    ...s,
    message: `${safe}: ${s.message}`,
    details: { ...s.details, href: safe },
  });
  if (err.cause !== undefined) Object.defineProperty(copy, 'cause', { value: err.cause });
  return copy;
}
