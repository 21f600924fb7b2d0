import type { ImageAuth } from './types';

/** How http(s) sources connect. Every field is optional; the defaults are below. */
export interface HttpOptions {
  /**
   * No byte received for this long (headers or body) → `ImageDownloadFailed` (retryable). Default 60000; 0 turns
   * it off. There is no total timeout.
   */
  inactivityTimeoutMs?: number;
  /** TCP (and TLS) connection set-up bound. Default 30000; 0 turns it off. */
  connectTimeoutMs?: number;
  /** A PEM CA bundle trusted instead of the system roots (like curl --cacert); read once per option set. */
  caFile?: string;
  /** Lowest TLS version accepted. Default 'TLSv1.2'. */
  minTlsVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Verify the server's certificate and name. Default true. */
  verifyTls?: boolean;
  /** Redirects followed at most; one more is refused. Default 10. */
  maxRedirects?: number;
  /** Credentials for every request of this cache (a per-request `SourceOptions.auth` wins). */
  auth?: ImageAuth;
}

/** How `resolveSource` resolves an href. Every field is optional; the defaults are below. */
export interface SourceOptions {
  /** Folders file:// sources may be read from (spec.md §7). Default `['/var/lib/imagecache/files']`. */
  fileRoots?: string[];
  http?: HttpOptions;
  /** Credentials for this one request; wins over `http.auth` and over `user:pass@` in the URL. */
  auth?: ImageAuth;
}

export const DEFAULT_FILE_ROOTS: readonly string[] = Object.freeze(['/var/lib/imagecache/files']);

export const DEFAULT_HTTP_OPTIONS = Object.freeze({
  inactivityTimeoutMs: 60_000,
  connectTimeoutMs: 30_000,
  minTlsVersion: 'TLSv1.2' as const,
  verifyTls: true,
  maxRedirects: 10,
});

/** HttpOptions with the defaults filled in. */
export interface ResolvedHttpOptions {
  inactivityTimeoutMs: number;
  connectTimeoutMs: number;
  caFile?: string;
  minTlsVersion: 'TLSv1.2' | 'TLSv1.3';
  verifyTls: boolean;
  maxRedirects: number;
  auth?: ImageAuth;
}

export function resolveHttpOptions(http: HttpOptions | undefined): ResolvedHttpOptions {
  return {
    inactivityTimeoutMs: http?.inactivityTimeoutMs ?? DEFAULT_HTTP_OPTIONS.inactivityTimeoutMs,
    connectTimeoutMs: http?.connectTimeoutMs ?? DEFAULT_HTTP_OPTIONS.connectTimeoutMs,
    caFile: http?.caFile,
    minTlsVersion: http?.minTlsVersion ?? DEFAULT_HTTP_OPTIONS.minTlsVersion,
    verifyTls: http?.verifyTls ?? DEFAULT_HTTP_OPTIONS.verifyTls,
    maxRedirects: http?.maxRedirects ?? DEFAULT_HTTP_OPTIONS.maxRedirects,
    auth: http?.auth,
  };
}
