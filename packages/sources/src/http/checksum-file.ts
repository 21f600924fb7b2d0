import { parseChecksumFile, type ChecksumAlgo, type ExpectedChecksum } from '@imagecache/checksum';
import { ImageCacheError, ImageDownloadFailed, redactHref, RedirectRefused } from '@imagecache/errors';
import { resolveHttpOptions, type HttpOptions } from '../options';
import { isOk, requestFollowing } from './client';
import { dispatchersFor } from './dispatchers';
import { contextFor } from './request';

export interface FetchChecksumOptions {
  /** The cache's http settings (timeouts, TLS, CA bundle, minimum rate, redirect policy). */
  http?: HttpOptions;
  signal?: AbortSignal;
  /** Extra request headers; an `authorization` one goes to the URL's own origin only. Never logged. */
  headers?: Record<string, string>;
  /** Only entries of this algorithm count (the request's `expectedChecksumAlgo`). */
  algo?: ChecksumAlgo;
  /** Accept md5 entries (default true). */
  allowMd5?: boolean;
  /** Refuse checksum files larger than this (default 1 MiB). */
  maxBytes?: number;
  /** The image's href, carried as the errors' `href`. */
  href?: string;
}

export const DEFAULT_CHECKSUM_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Downloads a checksum file through the same HTTP stack as images (the cache's TLS settings, CA bundle,
 * timeouts and redirect rules apply; the answer is read whole, so no parser is ever paused) and returns the
 * checksum of `fileName` in it (see parseChecksumFile).
 *
 * Credentials in the URL are sent as HTTP Basic auth (unless an `authorization` header is given) to its origin
 * only, and never appear in messages. Every failure is an ImageDownloadFailed naming the (redacted) checksum URL:
 * 4xx, too many redirects, a file over `maxBytes` or without the entry are permanent; 408, 429, 5xx, network
 * errors and timeouts are retryable. A refused redirect is a RedirectRefused; an abort an OperationAborted.
 */
export async function fetchChecksumFile(
  url: string,
  fileName: string,
  opts: FetchChecksumOptions = {},
): Promise<ExpectedChecksum> {
  const safeUrl = redactHref(url);
  const maxBytes = opts.maxBytes ?? DEFAULT_CHECKSUM_FILE_MAX_BYTES;
  const base = { href: opts.href, checksumUrl: safeUrl };
  const fail = (message: string, retryable: boolean, extra: Record<string, unknown> = {}) =>
    new ImageDownloadFailed(message, { ...base, ...extra, retryable });

  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw fail(`checksum URL ${safeUrl} is malformed`, false);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw fail(`checksum URL ${safeUrl} is not http(s)`, false);
  }
  const headers: Record<string, string> = {};
  const credentials: Record<string, string> = {};
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    if (name.toLowerCase() === 'authorization') credentials.authorization = value;
    else headers[name] = value;
  }
  if (target.username !== '' || target.password !== '') {
    if (credentials.authorization === undefined) {
      const user = safeDecode(target.username);
      const pass = safeDecode(target.password);
      credentials.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    target.username = '';
    target.password = '';
  }
  target.hash = '';

  const http = resolveHttpOptions(opts.http);
  let res;
  try {
    res = await requestFollowing({
      dispatchers: dispatchersFor(http),
      ctx: contextFor(opts.href !== undefined ? redactHref(opts.href) : safeUrl, http),
      url: target,
      method: 'GET',
      headers: { accept: '*/*', ...headers },
      credentials: credentials.authorization !== undefined ? credentials : undefined,
      signal: opts.signal,
      collect: maxBytes,
      maxRedirects: http.maxRedirects,
    });
  } catch (err) {
    if (!(err instanceof ImageDownloadFailed) || err instanceof RedirectRefused) throw err;
    if (/answer longer than/.test(err.message)) {
      throw fail(`checksum file ${safeUrl} is too large (over ${maxBytes} bytes)`, false);
    }
    throw fail(`could not fetch checksum file ${safeUrl}: ${err.message}`, err.retryable, {
      cause: err,
      ...(typeof err.details.reason === 'string' ? { reason: err.details.reason } : {}),
    });
  }
  const status = res.status;
  if (!isOk(status)) {
    if (status >= 300 && status < 400) {
      throw fail(
        `checksum file ${safeUrl}: HTTP ${status} (redirect not followed: too many redirects?)`,
        false,
        {
          status,
        },
      );
    }
    const retryable = status === 408 || status === 429 || status >= 500;
    throw fail(`could not fetch checksum file ${safeUrl}: HTTP ${status}`, retryable, { status });
  }
  const text = (res.data ?? Buffer.alloc(0)).toString('utf8');
  try {
    return parseChecksumFile(text, fileName, opts.algo, { url, href: opts.href, allowMd5: opts.allowMd5 });
  } catch (err) {
    if (err instanceof ImageCacheError) throw err;
    throw fail(`checksum file ${safeUrl}: ${(err as Error).message}`, false);
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
