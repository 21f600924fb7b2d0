import type { Readable } from 'node:stream';

/**
 * Credentials for one request or one cache; never logged.
 * - `basic`: HTTP Basic (http(s); an OCI registry's Basic challenge or its token service).
 * - `bearer`: a token: `Authorization: Bearer` (http(s), OCI registries; at a registry's token service it is
 *   used as a pre-shared secret, Basic with an empty user name, as Ironic does), `X-Auth-Token` for the image
 *   service (a Keystone token).
 * - `pullSecret`: a registry pull secret, the text of a Kubernetes `.dockerconfigjson` (or `.dockercfg`):
 *   `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")} | {"username", "password"} |
 *   {"registrytoken"}}}`; the entry of the href's registry is used (OCI only).
 */
export type ImageAuth =
  | { type: 'basic'; username: string; password: string }
  | { type: 'bearer'; token: string }
  | { type: 'pullSecret'; dockerConfigJson: string };

/** What `show()` tells about an image before it is downloaded. */
export interface ImageInfo {
  /** Bytes of the image as downloaded (Content-Length), when known. */
  size?: number;
  /** When the image last changed upstream (Last-Modified); undefined when unknown. */
  updatedAt?: Date;
  /** The source forbids caching (`Cache-Control: no-store`, or a file:// source). */
  noCache: boolean;
  /** The content behind this href can never change (image-service ids, OCI digests). */
  immutable: boolean;
  /** The source's own idea of the format (image service `disk_format`), if any. */
  diskFormat?: string;
  /** A validator for resuming with Range + If-Range (an ETag, or the Last-Modified text). */
  validator?: string;
  /** The image's file name as the source names it (last path segment), for checksum files. */
  fileName: string;
  /**
   * A checksum the source vouches for (image-service os_hash_value, an OCI digest): the engine verifies the
   * download against it when the caller gives none.
   */
  checksum?: { algo: 'md5' | 'sha256' | 'sha512'; value: string };
}

export interface ShowOptions {
  signal?: AbortSignal;
  /**
   * The caller downloads next whatever the answer (a miss with no master to compare): a source that can answer
   * with the download's own response does, and keeps it for `open()` (http: the GET's headers, no HEAD first).
   */
  forDownload?: boolean;
}

export interface OpenOptions {
  signal?: AbortSignal;
  /** Resume from this byte offset (Range), validated with `validator` through If-Range. */
  offset?: number;
  validator?: string;
}

/** An open download: a byte stream and what the response said about it. */
export interface ImageBody {
  stream: Readable;
  /** Where `stream` starts in the image: `offset` when the resume was honoured, else 0. */
  start: number;
  /** Total bytes of the image, when known; the reader must enforce it. */
  totalSize?: number;
  info: ImageInfo;
}

/** An image reference resolved to something that can be asked about and downloaded. */
export interface ImageSource {
  readonly kind: 'http' | 'file' | 'glance' | 'oci';
  /** The href exactly as given (may hold credentials: never log it). */
  readonly href: string;
  /** The href with credentials removed, for messages and logs. */
  readonly safeHref: string;
  /** Image-service id when the href names one; undefined for URL-named images. */
  readonly imageId?: string;
  show(opts?: ShowOptions): Promise<ImageInfo>;
  open(opts?: OpenOptions): Promise<ImageBody>;
  /**
   * Releases what `show()` may hold for a following `open()` (an http GET made for a download, or because HEAD
   * was refused).
   * Optional to call: such a response is dropped by itself after a few seconds.
   */
  close?(): void;
}

/**
 * Where a body can be received without a copy: the receiver reads the socket straight into `region()`. Used by
 * `BlockReadable.pipeTo`; any consumer of a plain Readable keeps working.
 */
export interface ByteSink {
  /** Free space for the next bytes (a view into a block), or undefined while none is free. */
  region(): Uint8Array | undefined;
  /** `n` bytes were stored at the start of the last region given (or copied there by the body). */
  commit(n: number): void;
  /** region() is undefined: `wake` is called once room is free again. */
  waitForRoom(wake: () => void): void;
}

/** A body stream that can also deliver straight into a ByteSink (the http receive path's bodies). */
export interface BlockReadable extends Readable {
  /**
   * Delivers the whole body into `sink` instead of as 'data' events (only before anything was read). Resolves
   * at the end of the body; rejects with the body's typed error (the stream is destroyed then).
   */
  pipeTo(sink: ByteSink): Promise<void>;
}

export function isBlockReadable(stream: Readable): stream is BlockReadable {
  return typeof (stream as Partial<BlockReadable>).pipeTo === 'function';
}
