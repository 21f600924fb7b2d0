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
 */
export class ImageCacheError extends Error {
  static readonly code: string = 'IMAGECACHE_ERROR';
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
}
/** A file:// reference breaks the rules of spec.md §7 (blocklist, allowed roots, regular file). */
export class ImageRefValidationFailed extends InvalidHref {
  static override readonly code: string = 'IMAGE_REF_VALIDATION_FAILED';
}
/** The destination path is unusable (relative, no parent folder, a folder itself). */
export class InvalidDestination extends ImageCacheError {
  static override readonly code: string = 'INVALID_DESTINATION';
}
/** Caller passed options that contradict each other or the cache's configuration. */
export class UsageError extends ImageCacheError {
  static override readonly code: string = 'USAGE_ERROR';
}
export class ImageNotFound extends ImageCacheError {
  static override readonly code: string = 'IMAGE_NOT_FOUND';
}
export class ImageAuthRequired extends ImageCacheError {
  static override readonly code: string = 'IMAGE_AUTH_REQUIRED';
}
/**
 * The service knows who is asking and refuses (an image service's 403: a deactivated image, another project's
 * image). A kind of ImageAuthRequired: other credentials may be allowed.
 */
export class ImageNotAuthorized extends ImageAuthRequired {
  static override readonly code: string = 'IMAGE_NOT_AUTHORIZED';
}
/** A transient failure (network, 5xx, 429, timeouts): the same request may succeed later. */
export class ImageDownloadFailed extends ImageCacheError {
  static override readonly code: string = 'IMAGE_DOWNLOAD_FAILED';
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
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { ...details, retryable: false });
  }
}
export class ImageChecksumError extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CHECKSUM_ERROR';
}
/** The checksum given is unusable: unknown algorithm, wrong length, empty, md5 disallowed. */
export class ImageChecksumAlgorithmFailure extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CHECKSUM_ALGORITHM_FAILURE';
}
export class InvalidImage extends ImageCacheError {
  static override readonly code: string = 'INVALID_IMAGE';
}
export class UnsafeImage extends InvalidImage {
  static override readonly code: string = 'UNSAFE_IMAGE';
}
export class ImageFormatNotPermitted extends InvalidImage {
  static override readonly code: string = 'IMAGE_FORMAT_NOT_PERMITTED';
}
export class ImageFormatMismatch extends InvalidImage {
  static override readonly code: string = 'IMAGE_FORMAT_MISMATCH';
}
export class ImageConvertFailed extends ImageCacheError {
  static override readonly code: string = 'IMAGE_CONVERT_FAILED';
}
export class InsufficientDiskSpace extends ImageCacheError {
  static override readonly code: string = 'INSUFFICIENT_DISK_SPACE';
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
 * will not fit next time either, unless the operator changes the cache.
 */
export class ImageTooLarge extends ImageCacheError {
  static override readonly code: string = 'IMAGE_TOO_LARGE';
}
/** A cache folder that can't be created, read or written. */
export class CacheFolderUnusable extends ImageCacheError {
  static override readonly code: string = 'CACHE_FOLDER_UNUSABLE';
}
export class ConfigError extends ImageCacheError {
  static override readonly code: string = 'CONFIG_ERROR';
}
/** Redis (the distributed mode's queue) can't be reached: the request was not enqueued. */
export class QueueUnavailable extends ImageCacheError {
  static override readonly code: string = 'QUEUE_UNAVAILABLE';
  override readonly retryable = true;
}
/** No answer for a queued request within the caller's time limit (the job may still finish). */
export class QueueTimeout extends ImageCacheError {
  static override readonly code: string = 'QUEUE_TIMEOUT';
  override readonly retryable = true;
}
/**
 * The credentials a job was given were dropped (the job had finished once, e.g. a retry from the board of a failed
 * job) or outlived their TTL: the job can't run without them, so it fails instead of fetching anonymously.
 */
export class CredentialsExpired extends ImageCacheError {
  static override readonly code: string = 'CREDENTIALS_EXPIRED';
}
/**
 * The job names credentials that belong to another job (a job added or duplicated on the board with another
 * job's `credentialsRef`): it gets none, and the other job's are left untouched.
 */
export class CredentialsNotOwned extends ImageCacheError {
  static override readonly code: string = 'CREDENTIALS_NOT_OWNED';
}
/**
 * No live worker serves the host or cache named (none has announced itself in Redis within its heartbeat TTL):
 * nothing was queued, or the job waited on lost its last worker. Retryable: a worker may come (back).
 */
export class NoWorker extends ImageCacheError {
  static override readonly code: string = 'NO_WORKER';
  override readonly retryable = true;
}
/** The operation was cancelled through its AbortSignal. */
export class OperationAborted extends ImageCacheError {
  static override readonly code: string = 'ABORTED';
  override readonly retryable = true;
}
/**
 * A peer token (fleet mode) that does not grant the name asked for: malformed, signed under another secret or
 * for another name, or expired (`details.reason`). The peer service answers 401 with no byte of the master.
 */
export class PeerTokenInvalid extends ImageCacheError {
  static override readonly code: string = 'PEER_TOKEN_INVALID';
}
