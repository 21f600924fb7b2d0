import { redactHref, UsageError } from '@imagecache/errors';
import { redirectPolicy, type RedirectPolicy } from './http/redirect-policy';
import type { ImageAuth } from './types';

/** How http(s) sources connect. Every field is optional; the defaults are below. */
export interface HttpOptions {
  /**
   * No byte received for this long (headers or body) → `ImageDownloadFailed` (retryable). Default 60000; 0 turns
   * it off. There is no total timeout.
   */
  inactivityTimeoutMs?: number;
  /**
   * A download slower than this many bytes per second over `minRateWindowMs` fails (`ImageDownloadFailed`,
   * retryable), so a trickling source can't hold a download slot forever. Default 1024 (1 KiB/s); 0 turns it
   * off. Time the reader spends behind (disk, hashing) does not count.
   */
  minRateBytesPerSec?: number;
  /** The window `minRateBytesPerSec` is measured over. Default 60000. */
  minRateWindowMs?: number;
  /**
   * Networks (CIDR: `10.0.0.0/8`, `fd00::/8`, or a bare address) a redirect may not lead to, besides the
   * link-local ranges 169.254.0.0/16 and fe80::/10, which are always refused (`RedirectRefused`).
   */
  blockedNetworks?: readonly string[];
  /** Follow a redirect from https to plain http. Default false (`RedirectRefused`). */
  allowHttpsToHttpRedirect?: boolean;
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
  /**
   * Credentials for this cache's requests to the origins in `authOrigins` (a per-request `SourceOptions.auth`
   * wins). Sent to no other origin: an href on another host, or a redirect to one, gets none.
   */
  auth?: ImageAuth;
  /**
   * The origins (`https://images.example:443`; default ports may be left out) `auth` is sent to. Required with
   * `auth`: a source refuses (UsageError) configured credentials that name no origin.
   */
  authOrigins?: readonly string[];
}

/** Keystone v3 password credentials (a scoped token is fetched, cached until shortly before expiry). */
export interface KeystoneCredentials {
  /** Keystone's URL, with or without `/v3` (`http://keystone:5000`). */
  authUrl: string;
  username: string;
  password: string;
  /** The user's domain; default the id `default`. */
  userDomainName?: string;
  userDomainId?: string;
  /** The project the token is scoped to (name or id); none: an unscoped token. */
  projectName?: string;
  projectId?: string;
  /** The project's domain (with projectName); default the id `default`. */
  projectDomainName?: string;
  projectDomainId?: string;
}

/** How the image service (OpenStack Glance v2) is reached. */
export type ImageServiceAuth =
  { type: 'none' } | { type: 'token'; token: string } | ({ type: 'keystone' } & KeystoneCredentials);

export interface ImageServiceOptions {
  /**
   * The image service's URL (`http://glance:9292`, with or without `/v2`). Without it, Keystone auth finds it in
   * the token's catalog (service type `image`, `interface`, `region`).
   */
  endpoint?: string;
  /** Default `{ type: 'none' }` (a service on a trusted network). A request's own `auth` wins. */
  auth?: ImageServiceAuth;
  /** Catalog interface when `endpoint` is not set. Default `public`. */
  interface?: 'public' | 'internal' | 'admin';
  /** Catalog region when `endpoint` is not set; default: the first endpoint of the interface. */
  region?: string;
}

/** One OCI registry's settings, matched by `host` (`HOST[:PORT]` exactly as in the href). */
export interface OciRegistryOptions {
  host: string;
  /** Credentials for this registry (a request's own `auth` wins): basic or a bearer token. */
  auth?: { type: 'basic'; username: string; password: string } | { type: 'bearer'; token: string };
  /** Talk plain http to this registry. Default: true for loopback hosts (127.0.0.0/8, localhost, [::1]), else false. */
  plainHttp?: boolean;
  /** A PEM CA bundle for this registry (else `http.caFile`). */
  caFile?: string;
  /** Verify its TLS certificate (else `http.verifyTls`). */
  verifyTls?: boolean;
}

export interface OciOptions {
  /** The platform an image index is resolved for. Default: this host's architecture, `linux`. */
  platform?: { architecture?: string; os?: string };
  /**
   * Preference between the manifests of an index by their `disktype` annotation, first wins. Default
   * `DEFAULT_OCI_DISK_TYPES` (raw first); `OCI_DISK_TYPES_FOR_CONVERSION` (qcow2 first) suits a cache that
   * converts to raw itself.
   */
  diskTypes?: readonly string[];
  registries?: readonly OciRegistryOptions[];
  /**
   * Origins (`https://auth.example:443`) of token services trusted when a registry names one on another scheme or
   * host than its own (Docker Hub's `auth.docker.io`). Others are refused (ImageAuthRequired), and never an http
   * realm offered by an https registry unless listed here.
   */
  allowedTokenRealms?: readonly string[];
}

/** How `resolveSource` resolves an href. Every field is optional; the defaults are below. */
export interface SourceOptions {
  /** Folders file:// sources may be read from (spec.md §7). Default `['/var/lib/imagecache/files']`. */
  fileRoots?: string[];
  /**
   * Accept a file:// image whose link count is over 1. Default false: another name of it may lie outside the
   * roots (a hard link made inside a root to a file elsewhere).
   */
  fileAllowHardLinks?: boolean;
  http?: HttpOptions;
  /** Image-service ids (a bare UUID, `glance://ID`). */
  imageService?: ImageServiceOptions;
  /** `oci://` references. Connections use `http`'s timeouts, TLS settings and redirect bound. */
  oci?: OciOptions;
  /**
   * Credentials for this one request; wins over `http.auth` and over `user:pass@` in the URL, over
   * `imageService.auth` and over a registry's configured auth.
   */
  auth?: ImageAuth;
}

/** Ironic's order when the deploy ramdisk writes the image (raw is streamed as it is). */
export const DEFAULT_OCI_DISK_TYPES: readonly string[] = Object.freeze(['raw', 'qcow2', 'qemu', 'applehv']);
/** Ironic's order when the conductor downloads and converts (`image_download_source=local`): smaller first. */
export const OCI_DISK_TYPES_FOR_CONVERSION: readonly string[] = Object.freeze([
  'qcow2',
  'qemu',
  'raw',
  'applehv',
]);

export const DEFAULT_FILE_ROOTS: readonly string[] = Object.freeze(['/var/lib/imagecache/files']);

export const DEFAULT_HTTP_OPTIONS = Object.freeze({
  inactivityTimeoutMs: 60_000,
  connectTimeoutMs: 30_000,
  minTlsVersion: 'TLSv1.2' as const,
  verifyTls: true,
  maxRedirects: 10,
  minRateBytesPerSec: 1024,
  minRateWindowMs: 60_000,
  allowHttpsToHttpRedirect: false,
});

/** HttpOptions with the defaults filled in. */
export interface ResolvedHttpOptions {
  inactivityTimeoutMs: number;
  connectTimeoutMs: number;
  caFile?: string;
  minTlsVersion: 'TLSv1.2' | 'TLSv1.3';
  verifyTls: boolean;
  maxRedirects: number;
  minRateBytesPerSec: number;
  minRateWindowMs: number;
  /** Where redirects may lead. */
  redirects: RedirectPolicy;
  auth?: ImageAuth;
  /** Normalized origins (`URL.origin`) `auth` may be sent to. */
  authOrigins?: ReadonlySet<string>;
}

/**
 * Option sets already resolved, by identity (a cache passes the same object to every source it makes: a warm hit
 * makes one). Resolved sets are frozen: what is shared can't be changed by one user.
 */
const resolved = new WeakMap<HttpOptions, ResolvedHttpOptions>();
let resolvedDefaults: ResolvedHttpOptions | undefined;

export function resolveHttpOptions(http: HttpOptions | undefined): ResolvedHttpOptions {
  if (http === undefined) return (resolvedDefaults ??= resolve(undefined));
  let r = resolved.get(http);
  if (!r) resolved.set(http, (r = resolve(http)));
  return r;
}

function resolve(http: HttpOptions | undefined): ResolvedHttpOptions {
  return Object.freeze({
    inactivityTimeoutMs: http?.inactivityTimeoutMs ?? DEFAULT_HTTP_OPTIONS.inactivityTimeoutMs,
    connectTimeoutMs: http?.connectTimeoutMs ?? DEFAULT_HTTP_OPTIONS.connectTimeoutMs,
    caFile: http?.caFile,
    minTlsVersion: http?.minTlsVersion ?? DEFAULT_HTTP_OPTIONS.minTlsVersion,
    verifyTls: http?.verifyTls ?? DEFAULT_HTTP_OPTIONS.verifyTls,
    maxRedirects: http?.maxRedirects ?? DEFAULT_HTTP_OPTIONS.maxRedirects,
    minRateBytesPerSec: http?.minRateBytesPerSec ?? DEFAULT_HTTP_OPTIONS.minRateBytesPerSec,
    minRateWindowMs: http?.minRateWindowMs ?? DEFAULT_HTTP_OPTIONS.minRateWindowMs,
    redirects: redirectPolicy(
      http?.blockedNetworks ?? [],
      http?.allowHttpsToHttpRedirect ?? DEFAULT_HTTP_OPTIONS.allowHttpsToHttpRedirect,
    ),
    auth: http?.auth,
    authOrigins: authOriginsOf(http),
  });
}

function authOriginsOf(http: HttpOptions | undefined): ReadonlySet<string> {
  if (http?.auth === undefined) return new Set();
  if (!http.authOrigins?.length) {
    throw new UsageError(
      'http.auth is set without the origins it may be sent to: list them (authOrigins, or http.auth.origins ' +
        'in a configuration file)',
    );
  }
  return new Set(http.authOrigins.map(originOf));
}

/** The normalized origin of `https://host[:port]` (UsageError when it is not one). */
export function originOf(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${JSON.stringify(redactHref(text))} is not an origin (http(s)://HOST[:PORT])`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.username) {
    throw new UsageError(`${JSON.stringify(redactHref(text))} is not an origin (http(s)://HOST[:PORT])`);
  }
  return url.origin;
}
