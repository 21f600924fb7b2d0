import { STATUS_CODES } from 'node:http';
import { ImageAuthRequired, ImageCacheError, ImageDownloadFailed, ImageNotFound } from '@imagecache/errors';
import { parseHttpDate } from '../http-date';
import { header, type HttpResponse } from './request';

/**
 * The typed error for an HTTP status (spec.md §3): 404/403/410 → ImageNotFound; 401 → ImageAuthRequired;
 * 408/429/5xx → ImageDownloadFailed (retryable); anything else → ImageDownloadFailed (not retryable).
 */
export function statusError(
  method: string,
  label: string,
  res: HttpResponse,
  safeHref: string,
): ImageCacheError {
  const status = res.status;
  const text = res.statusText || STATUS_CODES[status] || '';
  const message = `${method} ${label}: HTTP ${status}${text ? ` ${text}` : ''}`;
  const details = { href: safeHref, status };
  if (status === 404 || status === 403 || status === 410) return new ImageNotFound(message, details);
  if (status === 401) return new ImageAuthRequired(message, details);
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = retryAfter(header(res.headers, 'retry-after'));
    return new ImageDownloadFailed(message, {
      ...details,
      retryable: true,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  return new ImageDownloadFailed(message, { ...details, retryable: false });
}

/** Retry-After as milliseconds from now (seconds or an HTTP date), when given. */
function retryAfter(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const d = parseHttpDate(v);
  return d ? Math.max(0, d.getTime() - Date.now()) : undefined;
}

export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}
