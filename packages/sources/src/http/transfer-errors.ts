import { ImageCacheError, ImageDownloadFailed } from '@imagecache/errors';
import type { RequestContext } from './request';

/** Where in an exchange a network error happened, for the message. */
export interface ErrorPlace {
  /** `GET http://h/x.img` (redacted). */
  what: string;
  ctx: RequestContext;
  /** Body bytes received when the body was being read; undefined before. */
  got?: number;
  /** The body's announced length, if any. */
  expected?: number;
}

/** The typed error of a network failure (codes of Node's net/tls and undici's timeouts). */
export function networkError(err: Error & { code?: string }, at: ErrorPlace): ImageCacheError {
  if (err instanceof ImageCacheError) return err;
  const { what, ctx } = at;
  const details = { href: ctx.safeHref, cause: err, reason: err.code ?? err.name };
  const code = err.code ?? '';
  switch (code) {
    case 'UND_ERR_BODY_TIMEOUT':
      return new ImageDownloadFailed(
        `${what}: no data for ${ctx.inactivityTimeoutMs} ms (inactivity timeout)`,
        details,
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new ImageDownloadFailed(
        `${what}: no answer for ${ctx.inactivityTimeoutMs} ms (inactivity timeout)`,
        details,
      );
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new ImageDownloadFailed(`${what}: could not connect within ${ctx.connectTimeoutMs} ms`, details);
    case 'ECONNREFUSED':
      return new ImageDownloadFailed(`${what}: connection refused`, details);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ImageDownloadFailed(`${what}: cannot resolve the host name (${code})`, details);
    case 'HTTP_PROTOCOL_ERROR':
      // The same server sends the same malformed answer again: not retried.
      return new ImageDownloadFailed(`${what}: invalid HTTP answer: ${err.message}`, {
        ...details,
        retryable: false,
      });
  }
  if (isTlsError(code)) {
    // A certificate or protocol mismatch is a configuration problem: retrying won't fix it.
    return new ImageDownloadFailed(`${what}: TLS failure (${code}): ${err.message}`, {
      ...details,
      retryable: false,
    });
  }
  // A socket's failure in the middle of a body (a system error code); anything else keeps its own message.
  if (at.got !== undefined && code !== '') {
    return at.expected !== undefined
      ? shortBodyError(at, at.got)
      : new ImageDownloadFailed(
          `${what}: connection failed after ${at.got} bytes (${code || err.message})`,
          details,
        );
  }
  return new ImageDownloadFailed(`${what}: ${err.message}${code ? ` (${code})` : ''}`, details);
}

/** A body that ended before its announced length (retryable: the download resumes with Range). */
export function shortBodyError(at: ErrorPlace, got: number): ImageDownloadFailed {
  return new ImageDownloadFailed(`${at.what}: connection closed after ${got} of ${at.expected} bytes`, {
    href: at.ctx.safeHref,
    retryable: true,
    bytes: got,
    expected: at.expected,
  });
}

function isTlsError(code: string): boolean {
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY|DECRYPT)|^DEPTH_ZERO/.test(code)
  );
}
