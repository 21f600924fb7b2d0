import { ImageDownloadFailed, redactHref, UsageError } from '@imagecache/errors';
import { checkHrefText, invalidHref, safeHrefOf } from '../href';
import { parseHttpDate } from '../http-date';
import { resolveHttpOptions, type ResolvedHttpOptions, type SourceOptions } from '../options';
import type { ImageAuth, ImageBody, ImageInfo, ImageSource, OpenOptions, ShowOptions } from '../types';
import { dispatchersFor, type Dispatchers } from './dispatchers';
import { isOk, labelOf, requestFollowing } from './client';
import {
  contentLength,
  contextFor,
  header,
  type HttpBodyStream,
  type HttpResponse,
  type RequestContext,
} from './request';
import { rangedGet } from './ranged-get';
import { statusError } from './status';

/** How long a GET made by show() (for a download, or HEAD refused) waits for open() before it is dropped. */
export const KEPT_RESPONSE_MS = 10_000;

/** HEAD answers after which show() asks with a GET instead (some servers, and presigned URLs, refuse HEAD). */
const HEAD_REFUSED = new Set([403, 405, 501]);

interface KeptResponse {
  res: HttpResponse & { body: HttpBodyStream };
  info: ImageInfo;
  timer: NodeJS.Timeout;
}

/**
 * An http(s) image. `show()` asks with HEAD (redirects followed), falling back to a GET whose response is kept
 * for the next `open()` (and asks with that GET at once when told a download follows); `open()` streams a GET, resuming with Range + If-Range when given an offset and a
 * validator. Every failure is a typed error whose message holds no credential.
 */
export class HttpSource implements ImageSource {
  readonly kind = 'http' as const;
  readonly href: string;
  readonly safeHref: string;
  readonly imageId: undefined = undefined;
  /** The last path segment of the URL, decoded (for checksum files). */
  readonly fileName: string;
  private readonly url: URL;
  private readonly label: string;
  private readonly authorization?: string;
  private readonly options: ResolvedHttpOptions;
  private readonly dispatchers: Dispatchers;
  private readonly ctx: RequestContext;
  private kept?: KeptResponse;

  /** Validates `href` (throws InvalidHref) without any I/O. */
  constructor(href: string, options: SourceOptions = {}) {
    const { url, safeHref, label, fileName, userinfo } = parsedHref(href);
    this.href = href;
    this.safeHref = safeHref;
    this.options = resolveHttpOptions(options.http);
    this.url = url;
    this.label = label;
    this.fileName = fileName;
    // Configured credentials go to the origins named for them only (a request's own, or the URL's, go anywhere
    // the href points; a redirect to another origin drops every kind).
    const configured =
      this.options.auth && this.options.authOrigins?.has(url.origin) ? this.options.auth : undefined;
    const auth = options.auth ?? userinfo ?? configured;
    this.authorization = auth ? authorizationHeader(auth) : undefined;
    this.dispatchers = dispatchersFor(this.options);
    this.ctx = contextFor(this.safeHref, this.options);
  }

  async show(opts: ShowOptions = {}): Promise<ImageInfo> {
    this.close();
    if (!opts.forDownload) {
      const head = await this.request('HEAD', {}, opts.signal);
      if (isOk(head.status)) {
        const info = this.infoFrom(head);
        // A HEAD without a usable Content-Length (absent, or 0 from servers that don't compute it for HEAD).
        if (info.size) return info;
      } else if (!HEAD_REFUSED.has(head.status)) {
        throw statusError('HEAD', labelOf(head.url), head, this.safeHref);
      }
    }
    // The GET's own headers, its body kept unread for open(): a download asks once, as Ironic's cold miss does.
    const res = await this.request('GET', {}, opts.signal);
    if (!isOk(res.status) || !res.body || res.status === 206) {
      res.body?.destroy();
      throw statusError('GET', labelOf(res.url), res, this.safeHref);
    }
    const info = this.infoFrom(res);
    const timer = setTimeout(() => this.close(), KEPT_RESPONSE_MS);
    timer.unref();
    this.kept = { res: res as KeptResponse['res'], info, timer };
    res.body.rebind(undefined);
    return info;
  }

  async open(opts: OpenOptions = {}): Promise<ImageBody> {
    const offset = opts.offset ?? 0;
    const kept = this.kept;
    if (kept && offset === 0 && !opts.signal?.aborted) {
      // The GET show() made: nothing of it has been read yet.
      this.kept = undefined;
      clearTimeout(kept.timer);
      kept.res.body.rebind(opts.signal);
      return { stream: kept.res.body, start: 0, totalSize: kept.info.size, info: kept.info };
    }
    this.close();
    const validator = opts.validator;
    // Only a strong validator says the bytes are the same: without one, a resume could splice two files.
    const resume = offset > 0 && !!validator && !validator.startsWith('W/');
    const { res, resumed } = await rangedGet(
      (headers) => this.request('GET', headers, opts.signal),
      resume ? offset : 0,
      validator,
    );
    const body = res.body;
    if (resumed && body) {
      const info = this.infoFrom(res, resumed.totalSize);
      return { stream: body, start: resumed.start, totalSize: resumed.totalSize, info };
    }
    if ((res.status === 200 || res.status === 203) && body) {
      const info = this.infoFrom(res);
      return { stream: body, start: 0, totalSize: info.size, info };
    }
    body?.destroy();
    if (isOk(res.status)) {
      throw new ImageDownloadFailed(`GET ${labelOf(res.url)}: unexpected HTTP ${res.status} for an image`, {
        href: this.safeHref,
        status: res.status,
        retryable: false,
      });
    }
    throw statusError('GET', labelOf(res.url), res, this.safeHref);
  }

  /** Drops a response show() kept for open(), if any. */
  close(): void {
    const kept = this.kept;
    if (!kept) return;
    this.kept = undefined;
    clearTimeout(kept.timer);
    kept.res.body.destroy();
  }

  private infoFrom(res: HttpResponse, total?: number): ImageInfo {
    const h = res.headers;
    const lastModified = header(h, 'last-modified');
    const etag = header(h, 'etag');
    const cacheControl = header(h, 'cache-control');
    return {
      size: res.status === 206 ? total : contentLength(h),
      updatedAt: parseHttpDate(lastModified),
      noCache:
        cacheControl !== undefined &&
        cacheControl.split(',').some((d) => d.trim().toLowerCase() === 'no-store'),
      immutable: false,
      validator: etag && !etag.startsWith('W/') ? etag : lastModified,
      fileName: this.fileName,
    };
  }

  /** One request with redirects followed (at most `maxRedirects`; credentials dropped on another origin). */
  private request(
    method: 'GET' | 'HEAD',
    extra: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<HttpResponse> {
    return requestFollowing({
      dispatchers: this.dispatchers,
      ctx: this.ctx,
      url: this.url,
      method,
      headers: { accept: '*/*', ...extra },
      credentials: this.authorization ? { authorization: this.authorization } : undefined,
      signal,
      stream: method === 'GET',
      maxRedirects: this.options.maxRedirects,
    });
  }
}

/** What every source made from one href starts from. The URL is shared: nothing may change it. */
interface ParsedHref {
  /** Without userinfo and fragment. */
  url: URL;
  safeHref: string;
  /** The URL as messages show it. */
  label: string;
  fileName: string;
  /** Credentials the href itself carries. */
  userinfo?: ImageAuth;
}

/**
 * Hrefs already parsed: a warm hit makes a source for the same href on every call. Bounded; an href that may carry
 * a secret (userinfo, a query) is never kept.
 */
const parsedHrefs = new Map<string, ParsedHref>();
const PARSED_HREFS_MAX = 256;

function parsedHref(href: string): ParsedHref {
  let parsed = parsedHrefs.get(href);
  if (parsed) return parsed;
  const url = parseHttpHref(href);
  const userinfo = url.username || url.password ? basicFromUrl(url) : undefined;
  // Each setter serializes the URL again: only what is there is cleared.
  if (userinfo) {
    url.username = '';
    url.password = '';
  }
  if (href.includes('#')) url.hash = '';
  parsed = {
    url,
    safeHref: safeHrefOf(href),
    label: redactHref(url.href),
    fileName: lastSegment(url),
    userinfo,
  };
  if (!userinfo && !href.includes('?')) {
    if (parsedHrefs.size >= PARSED_HREFS_MAX) parsedHrefs.delete(parsedHrefs.keys().next().value!);
    parsedHrefs.set(href, parsed);
  }
  return parsed;
}

/** Parses and checks an http(s) href; throws InvalidHref. */
export function parseHttpHref(href: string): URL {
  checkHrefText(href);
  if (!/^https?:\/\/[^/]/i.test(href))
    throw invalidHref(href, 'expected http://host/... or https://host/...');
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    throw invalidHref(href, 'not a well-formed URL');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw invalidHref(href, 'not a well-formed http(s) URL');
  }
  return url;
}

function basicFromUrl(url: URL): ImageAuth {
  return { type: 'basic', username: decode(url.username), password: decode(url.password) };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The Authorization header of basic or bearer credentials; a registry pull secret is refused (oci:// only). */
export function authorizationHeader(auth: ImageAuth): string {
  if (auth.type === 'bearer') return `Bearer ${auth.token}`;
  if (auth.type === 'basic') return basicHeader(auth.username, auth.password);
  throw new UsageError('a registry pull secret (auth type pullSecret) applies to oci:// images only');
}

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

function lastSegment(url: URL): string {
  return decode(url.pathname.split('/').pop() ?? '');
}
