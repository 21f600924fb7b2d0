import { ImageCacheError, ImageDownloadFailed, OperationAborted, redactHref } from '@imagecache/errors';
import type { Dispatcher } from 'undici';
import { parseChecksumFile } from './checksum-file';
import type { ChecksumAlgo, ExpectedChecksum } from './types';

export interface FetchChecksumOptions {
  signal?: AbortSignal;
  /** Extra request headers (e.g. `authorization`); never logged. */
  headers?: Record<string, string>;
  /** The undici dispatcher to use (TLS settings, proxies); default the global one. */
  dispatcher?: Dispatcher;
  /** Only entries of this algorithm count (the request's `expectedChecksumAlgo`). */
  algo?: ChecksumAlgo;
  /** Accept md5 entries (default true). */
  allowMd5?: boolean;
  /** Refuse checksum files larger than this (default 1 MiB). */
  maxBytes?: number;
  /** Redirects followed at most (default 10). */
  maxRedirections?: number;
  /** Headers timeout and inactivity timeout of the body, ms (default 60 000). */
  timeoutMs?: number;
  /** The image's href, carried as the errors' `href`. */
  href?: string;
}

export const DEFAULT_CHECKSUM_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Downloads a checksum file and returns the checksum of `fileName` in it (see parseChecksumFile).
 *
 * Credentials in the URL are sent as HTTP Basic auth (unless an `authorization` header is given) and never
 * appear in messages. Every failure is an ImageDownloadFailed naming the (redacted) checksum URL: 404, 403, 410,
 * 401 and other 4xx, too many redirects, a file over `maxBytes` or without the entry are permanent
 * (retryable: false); 408, 429, 5xx, network errors and timeouts are retryable. An abort gives OperationAborted.
 */
export async function fetchChecksumFile(
  url: string,
  fileName: string,
  opts: FetchChecksumOptions = {},
): Promise<ExpectedChecksum> {
  const safeUrl = redactHref(url);
  const maxBytes = opts.maxBytes ?? DEFAULT_CHECKSUM_FILE_MAX_BYTES;
  const timeout = opts.timeoutMs ?? 60_000;
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
  const headers: Record<string, string> = { ...opts.headers };
  if (target.username !== '' || target.password !== '') {
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) {
      const user = safeDecode(target.username);
      const pass = safeDecode(target.password);
      headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    target.username = '';
    target.password = '';
  }

  // Loaded here: a fetch without a checksum URL (every cache hit) needs no HTTP client from this package.
  const { getGlobalDispatcher, interceptors, request } = await import('undici');
  const dispatcher = (opts.dispatcher ?? getGlobalDispatcher()).compose(
    interceptors.redirect({ maxRedirections: opts.maxRedirections ?? 10 }),
  );
  try {
    opts.signal?.throwIfAborted();
    const res = await request(target, {
      method: 'GET',
      headers,
      signal: opts.signal,
      dispatcher,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    res.body.on('error', () => undefined); // destroying it below must not raise an unhandled 'error'
    const status = res.statusCode;
    if (status < 200 || status >= 300) {
      await res.body.dump().catch(() => undefined);
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
    const announced = Number(res.headers['content-length']);
    if (Number.isFinite(announced) && announced > maxBytes) {
      res.body.destroy();
      throw fail(`checksum file ${safeUrl} is too large (${announced} bytes, limit ${maxBytes})`, false);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        res.body.destroy();
        throw fail(`checksum file ${safeUrl} is too large (over ${maxBytes} bytes)`, false);
      }
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    return parseChecksumFile(text, fileName, opts.algo, { url, href: opts.href, allowMd5: opts.allowMd5 });
  } catch (err) {
    if (err instanceof ImageCacheError) throw err;
    if (opts.signal?.aborted) {
      throw new OperationAborted(`fetching checksum file ${safeUrl} was aborted`, {
        href: opts.href,
        cause: err,
      });
    }
    const reason = err instanceof Error ? `${err.message}${codeOf(err)}` : String(err);
    throw fail(`could not fetch checksum file ${safeUrl}: ${reason}`, true, { cause: err });
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function codeOf(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? ` (${code})` : '';
}
