import { redactHref, redactText } from './redact';

export interface ErrorDetails {
  /** The image reference concerned; credentials are removed before it is stored. */
  href?: string;
  cause?: unknown;
  [key: string]: unknown;
}

/** The serialisable form of an error, as the CLI's --json and the distributed mode carry it. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
  details: Record<string, unknown>;
}

/**
 * Base of every error imagecache throws on purpose. `code` is stable and public;
 * `retryable` says whether the same request may succeed later.
 *
 * Each class owns its public statuses next to its code: `exitStatus` (the CLI's, one per code) and `httpStatus`
 * (the HTTP API's). The CLI's and the API's tables are read from here, and a test holds README's "Exit status"
 * and "HTTP API" tables to them. Every class declares all three itself, so a new class can't silently take
 * its parent's.
 */
export class ImageCacheError extends Error {
  static readonly code: string = 'IMAGECACHE_ERROR';
  /** 1: an error that is none of the others (a bug, an unexpected system error). */
  static readonly exitStatus: number = 1;
  static readonly httpStatus: number = 500;
  readonly code: string;
  readonly retryable: boolean = false;
  readonly href?: string;
  readonly details: Record<string, unknown>;

  constructor(message: string, details: ErrorDetails = {}) {
    const { cause, href, ...rest } = details;
    const safeHref = href === undefined ? undefined : redactHref(href);
    // Any URL quoted by a message or a detail (a checksum file's, a redirect's) loses its credentials too.
    super(redactText(message), cause === undefined ? undefined : { cause });
    for (const [k, v] of Object.entries(rest)) if (typeof v === 'string') rest[k] = redactText(v);
    this.name = new.target.name;
    this.code = (new.target as unknown as { code: string }).code;
    this.href = safeHref;
    this.details = safeHref === undefined ? rest : { href: safeHref, ...rest };
  }

  toJSON(): SerializedError {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      details: this.details,
    };
  }
}

/** The href is malformed, of an unknown scheme, or not a valid image id. */
export class InvalidHref extends ImageCacheError {
  static override readonly code: string = 'INVALID_HREF';
  static override readonly exitStatus: number = 10;
  static override readonly httpStatus: number = 400;
}
/** A file:// reference breaks the rules of spec.md §7 (blocklist, allowed roots, regular file). */
export class ImageRefValidationFailed extends InvalidHref {
  static override readonly code: string = 'IMAGE_REF_VALIDATION_FAILED';
  static override readonly exitStatus: number = 11;
  static override readonly httpStatus: number = 400;
}
/** The destination path is unusable (relative, no parent folder, a folder itself). */
export class InvalidDestination extends ImageCacheError {
  static override readonly code: string = 'INVALID_DESTINATION';
  static override readonly exitStatus: number = 12;
  static override readonly httpStatus: number = 400;
}
/** Caller passed options that contradict each other or the cache's configuration. */
export class UsageError extends ImageCacheError {
  static override readonly code: string = 'USAGE_ERROR';
  static override readonly exitStatus: number = 2;
  static override readonly httpStatus: number = 400;
}
export class ImageNotFound extends ImageCacheError {
  static override readonly code: string = 'IMAGE_NOT_FOUND';
  static override readonly exitStatus: number = 20;
  static override readonly httpStatus: number = 404;
}
/**
 * The image source wants credentials (HTTP 401). HTTP 502: the *image source* refused, not this API; 401 stays
 * reserved for the API's own basic auth (a 401 would make clients retry with other API credentials).
 */
export class ImageAuthRequired extends ImageCacheError {
  static override readonly code: string = 'IMAGE_AUTH_REQUIRED';
  static override readonly exitStatus: number = 21;
  static override readonly httpStatus: number = 502;
}
/**
 * The service knows who is asking and refuses (an image service's 403: a deactivated image, another project's
 * image). A kind of ImageAuthRequired: other credentials may be allowed.
 */
export class ImageNotAuthorized extends ImageAuthRequired {
  static override readonly code: string = 'IMAGE_NOT_AUTHORIZED';
  static override readonly exitStatus: number = 23;
  static override readonly httpStatus: number = 502;
}
/**
 * A transient failure (network, 5xx, 429, timeouts): the same request may succeed later. HTTP 502: the image
 * source failed, not this API.
 */
export class ImageDownloadFailed extends ImageCacheError {
  static override readonly code: string = 'IMAGE_DOWNLOAD_FAILED';
  static override readonly exitStatus: number = 22;
  static override readonly httpStatus: number = 502;
  override readonly retryable: boolean;
  constructor(message: string, details: ErrorDetails & { retryable?: boolean } = {}) {
    const { retryable, ...rest } = details;
    super(message, rest);
    this.retryable = retryable ?? true;
  }
}
/**
 * A redirect the policy refuses (http.blockedNetworks, a link-local address, https to http): the source is
 * sending the fetch where it may not go. Never retried.
 */
export class RedirectRefused extends ImageDownloadFailed {
  static override readonly code: string = 'REDIRECT_REFUSED';
  static override readonly exitStatus: number = 26;
  static override readonly httpStatus: number = 502;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { ...details, retryable: false });
  }
}
export class ImageChecksumError extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CHECKSUM_ERROR';
  static override readonly exitStatus: number = 30;
  static override readonly httpStatus: number = 422;
}
/** The checksum given is unusable: unknown algorithm, wrong length, empty, md5 disallowed. */
export class ImageChecksumAlgorithmFailure extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CHECKSUM_ALGORITHM_FAILURE';
  static override readonly exitStatus: number = 31;
  static override readonly httpStatus: number = 400;
}
export class InvalidImage extends ImageCacheError {
  static override readonly code: string = 'INVALID_IMAGE';
  static override readonly exitStatus: number = 40;
  static override readonly httpStatus: number = 422;
}
export class UnsafeImage extends InvalidImage {
  static override readonly code: string = 'UNSAFE_IMAGE';
  static override readonly exitStatus: number = 41;
  static override readonly httpStatus: number = 422;
}
export class ImageFormatNotPermitted extends InvalidImage {
  static override readonly code: string = 'IMAGE_FORMAT_NOT_PERMITTED';
  static override readonly exitStatus: number = 42;
  static override readonly httpStatus: number = 422;
}
export class ImageFormatMismatch extends InvalidImage {
  static override readonly code: string = 'IMAGE_FORMAT_MISMATCH';
  static override readonly exitStatus: number = 43;
  static override readonly httpStatus: number = 422;
}
/** qemu-img failed, or its output is not raw. HTTP 422 like InvalidImage: the image is the problem, not the server. */
export class ImageConvertFailed extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CONVERT_FAILED';
  static override readonly exitStatus: number = 44;
  static override readonly httpStatus: number = 422;
}
export class InsufficientDiskSpace extends ImageCacheError {
  static override readonly code: string = 'INSUFFICIENT_DISK_SPACE';
  static override readonly exitStatus: number = 50;
  static override readonly httpStatus: number = 507;
  readonly path: string;
  readonly required: number;
  readonly free: number;
  constructor(path: string, required: number, free: number, details: ErrorDetails = {}) {
    const mib = (n: number) => `${Math.floor(n / 1048576)} MiB`;
    super(`insufficient disk space at ${path}: ${mib(required)} required, ${mib(free)} free`, {
      path,
      required,
      free,
      ...details,
    });
    this.path = path;
    this.required = required;
    this.free = free;
  }
}
/**
 * The image can't fit: its declared size (Content-Length, the source's size), its virtual size (when converting)
 * or its decompressed size exceeds the cache's size or what the filesystem can give it (free space plus the
 * masters that could be evicted), or a body, decompression or conversion grew past that bound while it ran.
 * Refused before anything is evicted; `details` say what was measured (`size`, `atLeast` when the write was
 * stopped) against which bound (`limit`, `cacheSize`, `free`, `evictable`). Not retryable: the same image
 * will not fit next time either, unless the operator changes the cache (HTTP 422, unlike 507: space may come).
 */
export class ImageTooLarge extends ImageCacheError {
  static override readonly code: string = 'IMAGE_TOO_LARGE';
  static override readonly exitStatus: number = 45;
  static override readonly httpStatus: number = 422;
}
/** A cache folder that can't be created, read or written. */
export class CacheFolderUnusable extends ImageCacheError {
  static override readonly code: string = 'CACHE_FOLDER_UNUSABLE';
  static override readonly exitStatus: number = 51;
  static override readonly httpStatus: number = 500;
}
export class ConfigError extends ImageCacheError {
  static override readonly code: string = 'CONFIG_ERROR';
  static override readonly exitStatus: number = 3;
  static override readonly httpStatus: number = 500;
}
/** Redis (the distributed mode's queue) can't be reached: the request was not enqueued. */
export class QueueUnavailable extends ImageCacheError {
  static override readonly code: string = 'QUEUE_UNAVAILABLE';
  static override readonly exitStatus: number = 60;
  static override readonly httpStatus: number = 503;
  override readonly retryable = true;
}
/** No answer for a queued request within the caller's time limit (the job may still finish). */
export class QueueTimeout extends ImageCacheError {
  static override readonly code: string = 'QUEUE_TIMEOUT';
  static override readonly exitStatus: number = 61;
  static override readonly httpStatus: number = 504;
  override readonly retryable = true;
}
/**
 * The credentials a job was given were dropped (the job had finished once, e.g. a retry from the board of a failed
 * job) or outlived their TTL: the job can't run without them, so it fails instead of fetching anonymously.
 * HTTP 410: gone for good; submit the request again.
 */
export class CredentialsExpired extends ImageCacheError {
  static override readonly code: string = 'CREDENTIALS_EXPIRED';
  static override readonly exitStatus: number = 24;
  static override readonly httpStatus: number = 410;
}
/**
 * The job names credentials that belong to another job (a job added or duplicated on the board with another
 * job's `credentialsRef`): it gets none, and the other job's are left untouched.
 */
export class CredentialsNotOwned extends ImageCacheError {
  static override readonly code: string = 'CREDENTIALS_NOT_OWNED';
  static override readonly exitStatus: number = 25;
  static override readonly httpStatus: number = 403;
}
/**
 * No live worker serves the host or cache named (none has announced itself in Redis within its heartbeat TTL):
 * nothing was queued, or the job waited on lost its last worker. Retryable: a worker may come (back).
 * HTTP 409: a conflict with the deployment's state, not with Redis (503) nor with the caller's input (400).
 */
export class NoWorker extends ImageCacheError {
  static override readonly code: string = 'NO_WORKER';
  static override readonly exitStatus: number = 62;
  static override readonly httpStatus: number = 409;
  override readonly retryable = true;
}
/** The operation was cancelled through its AbortSignal (HTTP 409: cancelled while the call waited). */
export class OperationAborted extends ImageCacheError {
  static override readonly code: string = 'ABORTED';
  static override readonly exitStatus: number = 130;
  static override readonly httpStatus: number = 409;
  override readonly retryable = true;
}
/**
 * A peer token (fleet mode) that does not grant the name asked for: malformed, signed under another secret or
 * for another name, or expired (`details.reason`). The peer service answers 401 with no byte of the master.
 */
export class PeerTokenInvalid extends ImageCacheError {
  static override readonly code: string = 'PEER_TOKEN_INVALID';
}
