import {
  ConfigError,
  ImageAuthRequired,
  ImageDownloadFailed,
  ImageNotAuthorized,
  InvalidImage,
  UsageError,
  type ImageCacheError,
} from '@imagecache/errors';
import { parseImageServiceId, safeHrefOf } from '../href';
import { isOk, jsonOf, labelOf, requestFollowing } from '../http/client';
import { dispatchersFor, type Dispatchers } from '../http/dispatchers';
import { basicHeader } from '../http/http-source';
import { rangedGet } from '../http/ranged-get';
import { contentLength, contextFor, type HttpResponse, type RequestContext } from '../http/request';
import { statusError } from '../http/status';
import {
  resolveHttpOptions,
  type ImageServiceOptions,
  type ResolvedHttpOptions,
  type SourceOptions,
} from '../options';
import type { ImageBody, ImageInfo, ImageSource, OpenOptions } from '../types';
import { keystoneSession, KeystoneSession, type KeystoneToken } from './keystone';

const MAX_IMAGE_RECORD = 4 << 20;

/** Glance `disk_format`s that name a format the inspector knows by another name. */
const DISK_FORMAT_ALIASES: Record<string, string> = { ami: 'raw' };

/** What `GET /v2/images/{id}` answers (the fields used). */
interface GlanceImage {
  id?: string;
  status?: string;
  size?: number | null;
  disk_format?: string | null;
  checksum?: string | null;
  os_hash_algo?: string | null;
  os_hash_value?: string | null;
  updated_at?: string | null;
  created_at?: string | null;
}

/**
 * An image of an OpenStack image service (Glance v2 API), named by its id (a bare UUID or `glance://ID`).
 * `show()` reads the image record (`GET /v2/images/{id}`): only an `active` image is accepted; its
 * `os_hash_value` (else its md5 `checksum`) is the checksum the engine verifies while streaming, its
 * `disk_format` the expected format. `open()` streams `GET /v2/images/{id}/file`. Ids are immutable, so a
 * present master is fresh, and the master is named by the id (as Ironic names it).
 */
export class GlanceSource implements ImageSource {
  readonly kind = 'glance' as const;
  readonly href: string;
  readonly safeHref: string;
  readonly imageId: string;
  private readonly http: ResolvedHttpOptions;
  private readonly dispatchers: Dispatchers;
  private readonly ctx: RequestContext;
  private readonly service: ImageServiceOptions;
  /** The caller's own credentials for this request (no renewal is possible). */
  private readonly requestCredentials?: Record<string, string>;
  private readonly session?: KeystoneSession;
  private info?: ImageInfo;

  /** Validates the href and the configuration (throws InvalidHref, ConfigError) without any I/O. */
  constructor(href: string, options: SourceOptions = {}) {
    this.imageId = parseImageServiceId(href);
    this.href = href;
    this.safeHref = safeHrefOf(href);
    this.http = resolveHttpOptions(options.http);
    this.dispatchers = dispatchersFor(this.http);
    this.ctx = contextFor(this.safeHref, this.http);
    this.service = options.imageService ?? {};
    const auth = this.service.auth ?? { type: 'none' };
    const own = options.auth;
    if (own) {
      if (own.type === 'bearer') this.requestCredentials = { 'x-auth-token': own.token };
      else if (own.type === 'basic')
        this.requestCredentials = { authorization: basicHeader(own.username, own.password) };
      else
        throw new UsageError('a registry pull secret (auth type pullSecret) applies to oci:// images only');
    } else if (auth.type === 'keystone') {
      this.session = keystoneSession(auth, this.http);
    }
    if (this.service.endpoint === undefined && auth.type !== 'keystone') {
      throw new ConfigError(
        `${this.safeHref}: no image service configured (set imageService.endpoint, or Keystone auth to find it in the catalog)`,
        { href: this.safeHref },
      );
    }
    if (this.service.endpoint !== undefined) serviceBase(this.service.endpoint); // a malformed URL fails now
  }

  async show(opts: { signal?: AbortSignal } = {}): Promise<ImageInfo> {
    const res = await this.call(`/v2/images/${this.imageId}`, {
      collect: MAX_IMAGE_RECORD,
      signal: opts.signal,
    });
    const what = `GET ${labelOf(res.url)}`;
    if (!isOk(res.status)) throw this.statusError('GET', res);
    const image = jsonOf(res, what, this.safeHref) as GlanceImage;
    if (typeof image !== 'object' || image === null) {
      throw new ImageDownloadFailed(`${what}: the image record is not a JSON object`, {
        href: this.safeHref,
        retryable: false,
      });
    }
    if (image.status !== 'active') {
      throw new InvalidImage(
        `image ${this.imageId} is ${image.status ?? 'of unknown status'} in the image service, not active`,
        { href: this.safeHref, status: image.status },
      );
    }
    if (image.size === 0) {
      throw new ImageDownloadFailed(`image ${this.imageId} contains no data (size 0)`, {
        href: this.safeHref,
        retryable: false,
      });
    }
    const checksum = vouchedChecksum(image);
    const updated = Date.parse(image.updated_at ?? image.created_at ?? '');
    const diskFormat = image.disk_format ?? undefined;
    this.info = {
      size: typeof image.size === 'number' ? image.size : undefined,
      updatedAt: Number.isFinite(updated) ? new Date(updated) : undefined,
      noCache: false,
      immutable: true,
      diskFormat: diskFormat ? (DISK_FORMAT_ALIASES[diskFormat] ?? diskFormat) : undefined,
      validator: checksum?.value,
      fileName: this.imageId,
      checksum,
    };
    return this.info;
  }

  async open(opts: OpenOptions = {}): Promise<ImageBody> {
    const info = this.info ?? (await this.show({ signal: opts.signal }));
    const offset = opts.offset ?? 0;
    // The data of an id never changes: a plain Range (no If-Range) resumes safely.
    const { res, resumed } = await rangedGet(
      (headers) =>
        this.call(`/v2/images/${this.imageId}/file`, { stream: true, signal: opts.signal, headers }),
      offset,
    );
    const body = res.body;
    const what = `GET ${labelOf(res.url)}`;
    if (resumed && body) return { stream: body, start: resumed.start, totalSize: resumed.totalSize, info };
    if (res.status === 200 && body) {
      const length = contentLength(res.headers);
      if (length === 0) {
        body.destroy();
        throw this.noData(what);
      }
      return { stream: body, start: 0, totalSize: length ?? info.size, info };
    }
    body?.destroy();
    // 204: Glance's answer for an image without data (queued, or its store file missing).
    if (res.status === 204) throw this.noData(what);
    if (isOk(res.status)) {
      throw new ImageDownloadFailed(`${what}: unexpected HTTP ${res.status} for image data`, {
        href: this.safeHref,
        status: res.status,
        retryable: false,
      });
    }
    throw this.statusError('GET', res);
  }

  private noData(what: string): ImageDownloadFailed {
    return new ImageDownloadFailed(`${what}: image ${this.imageId} contains no data`, {
      href: this.safeHref,
      retryable: false,
    });
  }

  /** 404 → ImageNotFound, 403 → ImageNotAuthorized, 401 → ImageAuthRequired, 5xx/429 → retryable. */
  private statusError(method: string, res: HttpResponse): ImageCacheError {
    const err = statusError(method, labelOf(res.url), res, this.safeHref);
    if (res.status === 403) {
      return new ImageNotAuthorized(`${err.message}: not authorized for image ${this.imageId}`, {
        href: this.safeHref,
        status: 403,
      });
    }
    return err;
  }

  /**
   * One request to the image service with the right credentials. With Keystone auth, a 401 makes the token
   * renewed once and the request sent again; a second 401 is ImageAuthRequired.
   */
  private async call(
    path: string,
    o: { stream?: boolean; collect?: number; signal?: AbortSignal; headers?: Record<string, string> },
  ): Promise<HttpResponse> {
    for (let attempt = 1; ; attempt++) {
      const token = this.session ? await this.session.token(o.signal) : undefined;
      const credentials = this.requestCredentials ?? this.staticCredentials(token?.value);
      const base =
        this.service.endpoint !== undefined ? serviceBase(this.service.endpoint) : this.catalogBase(token);
      const url = new URL(base.href.replace(/\/$/, '') + path);
      const res = await requestFollowing({
        dispatchers: this.dispatchers,
        ctx: this.ctx,
        url,
        method: 'GET',
        headers: { accept: o.stream ? 'application/octet-stream' : 'application/json', ...o.headers },
        credentials,
        signal: o.signal,
        stream: o.stream,
        collect: o.collect,
        maxRedirects: this.http.maxRedirects,
      });
      if (res.status !== 401) return res;
      res.body?.destroy();
      if (this.session && token && attempt === 1) {
        this.session.invalidate(token.value); // expired or revoked: one fresh token, one more try
        continue;
      }
      const why = this.session
        ? 'it refused a fresh Keystone token'
        : this.requestCredentials
          ? "it refused the request's credentials"
          : credentials
            ? 'it refused the configured token'
            : 'it requires authentication (configure imageService.auth)';
      throw new ImageAuthRequired(`GET ${labelOf(res.url)}: HTTP 401 from the image service: ${why}`, {
        href: this.safeHref,
        status: 401,
      });
    }
  }

  private staticCredentials(keystoneToken: string | undefined): Record<string, string> | undefined {
    if (keystoneToken) return { 'x-auth-token': keystoneToken };
    const auth = this.service.auth;
    if (auth?.type === 'token') return { 'x-auth-token': auth.token };
    return undefined;
  }

  private catalogBase(token: KeystoneToken | undefined): URL {
    const iface = this.service.interface ?? 'public';
    const found = token && KeystoneSession.endpointFrom(token, 'image', iface, this.service.region);
    if (!found) {
      throw new ConfigError(
        `${this.safeHref}: the Keystone catalog lists no ${this.service.interface ?? 'public'} image endpoint${
          this.service.region ? ` in region ${this.service.region}` : ''
        }; set imageService.endpoint`,
        { href: this.safeHref },
      );
    }
    return serviceBase(found);
  }
}

/** The endpoint without a trailing `/v2` (requests add `/v2/...`). */
function serviceBase(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConfigError('imageService.endpoint is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('imageService.endpoint must be an http(s) URL');
  }
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '') || '/';
  url.search = '';
  url.hash = '';
  return url;
}

/** os_hash_value when its algorithm is one the engine verifies, else the md5 `checksum`. */
function vouchedChecksum(image: GlanceImage): ImageInfo['checksum'] {
  const algo = image.os_hash_algo?.toLowerCase();
  const value = image.os_hash_value;
  const lengths: Record<string, number> = { md5: 32, sha256: 64, sha512: 128 };
  // A value that is malformed for its algorithm is vouched all the same: the download can't match it, and is
  // refused (ImageChecksumError) rather than checked against a weaker hash.
  if (algo && value && lengths[algo] !== undefined) {
    return { algo: algo as 'md5' | 'sha256' | 'sha512', value: value.toLowerCase() };
  }
  if (image.checksum && /^[0-9a-f]{32}$/i.test(image.checksum)) {
    return { algo: 'md5', value: image.checksum.toLowerCase() };
  }
  return undefined;
}
