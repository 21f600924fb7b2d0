import { ImageDownloadFailed, redactHref } from '@imagecache/errors';
import type { Dispatchers } from './dispatchers';
import { header, send, type HttpMethod, type HttpResponse, type RequestContext } from './request';
import { checkRedirect, type PinnedAddress } from './redirect-policy';
import { isRedirect } from './status';

export const USER_AGENT = 'imagecache/0.1';

export interface FollowParams {
  dispatchers: Dispatchers;
  ctx: RequestContext;
  url: URL;
  method: HttpMethod;
  /** Sent to every hop. */
  headers?: Record<string, string>;
  /**
   * Credential headers (Authorization, X-Auth-Token, …): sent to `url`'s origin only, dropped as soon as a
   * redirect leads to another origin (blob storage, a CDN).
   */
  credentials?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** A GET for a body: a connection of its own, a stream for a 2xx answer. */
  stream?: boolean;
  /** Read a small body whole (see SendParams.collect). */
  collect?: number;
  /** Redirects followed at most (GET and HEAD only); one more is refused. */
  maxRedirects: number;
}

/** The URL as messages may show it: credentials and secret-looking query values removed. */
export function labelOf(url: URL): string {
  return redactHref(url.href);
}

/**
 * One request with redirects followed (GET and HEAD; at most `maxRedirects`; only to http(s) URLs), credential
 * headers kept only while the origin stays the same. Resolves with the final answer, whatever its status.
 */
export async function requestFollowing(p: FollowParams): Promise<HttpResponse> {
  let url = p.url;
  let pin: PinnedAddress | undefined;
  let credentials = p.credentials;
  const follows = p.method === 'GET' || p.method === 'HEAD';
  for (let hops = 0; ; hops++) {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...p.headers, ...credentials };
    const label = labelOf(url);
    const res = await send({
      dispatchers: p.dispatchers,
      url,
      method: p.method,
      headers,
      body: p.body,
      signal: p.signal,
      stream: p.stream ?? false,
      collect: p.collect,
      label,
      pin,
      ctx: p.ctx,
    });
    const location = header(res.headers, 'location');
    if (!follows || !isRedirect(res.status) || !location) return res;
    res.body?.destroy();
    if (hops >= p.maxRedirects) {
      throw new ImageDownloadFailed(
        `${p.method} ${labelOf(p.url)}: more than ${p.maxRedirects} redirects (last at ${label})`,
        { href: p.ctx.safeHref, retryable: false },
      );
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new ImageDownloadFailed(`${p.method} ${label}: HTTP ${res.status} to an invalid location`, {
        href: p.ctx.safeHref,
        retryable: false,
      });
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new ImageDownloadFailed(
        `${p.method} ${label}: HTTP ${res.status} to a ${next.protocol} URL, refused`,
        {
          href: p.ctx.safeHref,
          retryable: false,
        },
      );
    }
    next.username = '';
    next.password = '';
    next.hash = '';
    // Checked before anything is sent there, and connected to at the address that was checked.
    if (p.ctx.redirects) {
      pin = await checkRedirect(url, next, p.ctx.redirects, `${p.method} ${label}`, p.ctx.safeHref, p.signal);
    }
    if (next.origin !== url.origin) credentials = undefined;
    url = next;
  }
}

/** The JSON of a collected answer; a body that is not JSON is a (permanent) download failure. */
export function jsonOf(res: HttpResponse, what: string, safeHref: string): unknown {
  try {
    return JSON.parse((res.data ?? Buffer.alloc(0)).toString('utf8')) as unknown;
  } catch {
    throw new ImageDownloadFailed(`${what}: HTTP ${res.status} with a body that is not JSON`, {
      href: safeHref,
      status: res.status,
      retryable: false,
    });
  }
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}
