import { createHash } from 'node:crypto';
import { ConfigError, ImageAuthRequired, ImageDownloadFailed, OperationAborted } from '@imagecache/errors';
import { isOk, jsonOf, labelOf, requestFollowing } from '../http/client';
import { dispatchersFor } from '../http/dispatchers';
import { contextFor, header } from '../http/request';
import { statusError } from '../http/status';
import type { KeystoneCredentials, ResolvedHttpOptions } from '../options';

/** A token is renewed this long before it expires (or at 3/4 of its life, if that is shorter). */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;
const MAX_TOKEN_ANSWER = 4 << 20;

export interface CatalogEndpoint {
  interface?: string;
  region_id?: string;
  region?: string;
  url?: string;
}

export interface KeystoneToken {
  /** The X-Subject-Token: a secret. */
  value: string;
  /** When it stops being valid (ms since the epoch). */
  expiresAt: number;
  /** When imagecache renews it. */
  refreshAt: number;
  catalog: { type?: string; endpoints?: CatalogEndpoint[] }[];
}

/**
 * Keystone v3 password authentication for one set of credentials: one token at a time, shared by every request
 * of the process, renewed shortly before it expires, or at once when a service refused it (`invalidate`).
 */
export class KeystoneSession {
  private current?: KeystoneToken;
  private pending?: PendingToken;
  private readonly tokensUrl: URL;
  /** How many tokens were issued to this session (tests, diagnostics). */
  issued = 0;

  constructor(
    private readonly creds: KeystoneCredentials,
    private readonly http: ResolvedHttpOptions,
    /** The clock, replaceable for tests of the renewal rule. */
    private readonly now: () => number = Date.now,
  ) {
    this.tokensUrl = tokensUrl(creds.authUrl);
  }

  /**
   * A valid token: the cached one, or a new one (one request at a time, shared by concurrent callers). A
   * caller's `signal` ends its own wait only: the request goes on for the others, and is dropped once every
   * caller waiting for it has gone.
   */
  async token(signal?: AbortSignal): Promise<KeystoneToken> {
    const cur = this.current;
    if (cur && this.now() < cur.refreshAt) return cur;
    // Typed, whatever the signal's reason: a caller's abort is OperationAborted (exit 130, HTTP 409).
    if (signal?.aborted)
      throw new OperationAborted('cancelled while waiting for a Keystone token', { cause: signal.reason });
    let pending = this.pending;
    if (!pending) {
      const controller = new AbortController();
      const promise = this.issue(controller.signal).finally(() => {
        if (this.pending === pending) this.pending = undefined;
      });
      promise.catch(() => undefined); // every waiter may be gone by then
      pending = { promise, controller, waiting: 0 };
      this.pending = pending;
    }
    const shared = pending;
    shared.waiting++;
    try {
      return await waitUnlessAborted(shared.promise, signal);
    } finally {
      if (--shared.waiting === 0 && this.pending === shared) {
        this.pending = undefined;
        shared.controller.abort();
      }
    }
  }

  /** A service refused `value` (expired, revoked): the next `token()` asks Keystone for a new one. */
  invalidate(value: string): void {
    if (this.current?.value === value) this.current = undefined;
  }

  private async issue(signal?: AbortSignal): Promise<KeystoneToken> {
    const c = this.creds;
    const userDomain = c.userDomainId
      ? { id: c.userDomainId }
      : c.userDomainName
        ? { name: c.userDomainName }
        : { id: 'default' };
    const projectDomain = c.projectDomainId
      ? { id: c.projectDomainId }
      : c.projectDomainName
        ? { name: c.projectDomainName }
        : { id: 'default' };
    const scope = c.projectId
      ? { project: { id: c.projectId } }
      : c.projectName
        ? { project: { name: c.projectName, domain: projectDomain } }
        : undefined;
    const body = JSON.stringify({
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: c.username, domain: userDomain, password: c.password } },
        },
        ...(scope ? { scope } : {}),
      },
    });
    const label = labelOf(this.tokensUrl);
    const ctx = contextFor(label, this.http);
    const started = this.now();
    const res = await requestFollowing({
      dispatchers: dispatchersFor(this.http),
      ctx,
      url: this.tokensUrl,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body,
      signal,
      collect: MAX_TOKEN_ANSWER,
      maxRedirects: 0,
    });
    if (res.status === 401 || res.status === 403) {
      // Keystone's message ("The request you have made requires authentication.") names no credential; ours
      // neither: the user name and password stay out of every message.
      throw new ImageAuthRequired(
        `POST ${label}: Keystone refused the configured credentials (HTTP ${res.status})`,
        { status: res.status, service: 'keystone' },
      );
    }
    if (!isOk(res.status)) {
      const err = statusError('POST', label, res, label);
      throw new ImageDownloadFailed(`Keystone: ${err.message}`, {
        status: res.status,
        retryable: err.retryable,
        ...(typeof err.details.retryAfterMs === 'number' ? { retryAfterMs: err.details.retryAfterMs } : {}),
      });
    }
    const value = header(res.headers, 'x-subject-token');
    const json = jsonOf(res, `POST ${label}`, label) as {
      token?: { expires_at?: string; catalog?: KeystoneToken['catalog'] };
    };
    if (!value) {
      throw new ImageDownloadFailed(`POST ${label}: Keystone answered without an X-Subject-Token`, {
        retryable: false,
      });
    }
    const expires = Date.parse(json.token?.expires_at ?? '');
    const expiresAt = Number.isFinite(expires) ? expires : started + 3600_000;
    const life = Math.max(0, expiresAt - started);
    const refreshAt = expiresAt - Math.min(TOKEN_REFRESH_MARGIN_MS, life / 4);
    this.issued++;
    this.current = { value, expiresAt, refreshAt, catalog: json.token?.catalog ?? [] };
    return this.current;
  }

  /** The URL of a service in the last token's catalog. */
  static endpointFrom(
    token: KeystoneToken,
    type: string,
    iface: string,
    region: string | undefined,
  ): string | undefined {
    for (const service of token.catalog) {
      if (service.type !== type) continue;
      const found = (service.endpoints ?? []).find(
        (e) =>
          e.interface === iface &&
          (region === undefined || e.region_id === region || e.region === region) &&
          typeof e.url === 'string',
      );
      if (found?.url) return found.url;
    }
    return undefined;
  }
}

interface PendingToken {
  promise: Promise<KeystoneToken>;
  controller: AbortController;
  /** Callers waiting for it. */
  waiting: number;
}

/** `p`, or an OperationAborted as soon as `signal` fires (`p` itself goes on). */
function waitUnlessAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new OperationAborted('cancelled while waiting for a Keystone token'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function tokensUrl(authUrl: string): URL {
  let url: URL;
  try {
    url = new URL(authUrl);
  } catch {
    throw new ConfigError('imageService.auth.authUrl is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('imageService.auth.authUrl must be an http(s) URL');
  }
  let path = url.pathname.replace(/\/+$/, '');
  if (!/\/v3$/.test(path)) path += '/v3';
  url.pathname = `${path}/auth/tokens`;
  url.search = '';
  url.hash = '';
  return url;
}

const sessions = new Map<string, KeystoneSession>();

/** The process-wide session of these credentials (their token is shared by every fetch). */
export function keystoneSession(creds: KeystoneCredentials, http: ResolvedHttpOptions): KeystoneSession {
  const key = createHash('sha256')
    .update(
      JSON.stringify([
        creds.authUrl,
        creds.username,
        creds.password,
        creds.userDomainId,
        creds.userDomainName,
        creds.projectId,
        creds.projectName,
        creds.projectDomainId,
        creds.projectDomainName,
        http.caFile,
        http.verifyTls,
      ]),
    )
    .digest('hex');
  let s = sessions.get(key);
  if (!s) {
    s = new KeystoneSession(creds, http);
    sessions.set(key, s);
  }
  return s;
}

/** Forgets every cached Keystone token (tests, credential rotation). */
export function clearKeystoneSessions(): void {
  sessions.clear();
}
