import { createHash } from 'node:crypto';
import { ImageAuthRequired, ImageDownloadFailed, UsageError } from '@imagecache/errors';
import { isOk, jsonOf, labelOf, requestFollowing } from '../http/client';
import type { Dispatchers } from '../http/dispatchers';
import { basicHeader } from '../http/http-source';
import { header, type HttpResponse, type RequestContext } from '../http/request';
import { statusError } from '../http/status';
import type { SourceOptions } from '../options';
import type { OciReference } from './reference';

/** Credentials for one registry. */
export type RegistryCredentials =
  { type: 'basic'; username: string; password: string } | { type: 'bearer'; token: string };

const MAX_TOKEN_ANSWER = 1 << 20;
/** Registries' tokens live 60 s unless the token service says otherwise (distribution's default). */
const DEFAULT_TOKEN_LIFE_S = 60;

/**
 * The credentials for `ref`'s registry: the request's own (`basic`, `bearer`, or the registry's entry of a
 * pull secret), else the registry's configured ones, else none (anonymous).
 */
export function registryCredentials(
  ref: OciReference,
  options: SourceOptions,
): RegistryCredentials | undefined {
  const own = options.auth;
  if (own?.type === 'basic' || own?.type === 'bearer') return own;
  if (own?.type === 'pullSecret') {
    const fromSecret = fromPullSecret(own.dockerConfigJson, ref.registry);
    if (fromSecret) return fromSecret;
  }
  return options.oci?.registries?.find((r) => r.host.toLowerCase() === ref.registry.toLowerCase())?.auth;
}

/** The entry of `registry` in a `.dockerconfigjson` (`{"auths": {...}}`) or `.dockercfg` (`{...}`) text. */
export function fromPullSecret(text: string, registry: string): RegistryCredentials | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError('the registry pull secret is not valid JSON (a .dockerconfigjson text is expected)');
  }
  if (!isObject(parsed)) throw new UsageError('the registry pull secret is not a JSON object');
  const auths = isObject(parsed.auths) ? parsed.auths : parsed;
  const want = registry.toLowerCase();
  for (const [key, entry] of Object.entries(auths)) {
    const host = key
      .toLowerCase()
      .replace(/^[a-z]+:\/\//, '')
      .replace(/\/.*$/, '');
    if (host !== want || !isObject(entry)) continue;
    if (typeof entry.registrytoken === 'string' && entry.registrytoken) {
      return { type: 'bearer', token: entry.registrytoken };
    }
    if (typeof entry.username === 'string' && typeof entry.password === 'string') {
      return { type: 'basic', username: entry.username, password: entry.password };
    }
    if (typeof entry.auth === 'string' && entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0)
        throw new UsageError(`the pull secret's auth for ${registry} is not base64 of "user:password"`);
      return { type: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (typeof entry.identitytoken === 'string') {
      throw new UsageError(
        `the pull secret's identitytoken for ${registry} is not supported (give auth or registrytoken)`,
      );
    }
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface Challenge {
  /** Lower case: `bearer`, `basic`, … */
  scheme: string;
  params: Record<string, string>;
}

/** The first challenge of a WWW-Authenticate header (`Bearer realm="…",service="…",scope="…"`). */
export function parseChallenge(value: string | undefined): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/.exec(value ?? '');
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    const key = (p[1] ?? '').toLowerCase();
    params[key] ??= p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

/**
 * Whether a registry may send us to `realm` for a token: the registry's own scheme and host (any port), or an
 * origin configured as trusted. An https registry naming an http realm, or another host's, is refused.
 */
export function realmAllowed(realm: URL, registry: URL, allowed: ReadonlySet<string>): boolean {
  if (allowed.has(realm.origin)) return true;
  return realm.protocol === registry.protocol && realm.hostname === registry.hostname;
}

interface CachedToken {
  value: string;
  refreshAt: number;
}

/**
 * Tokens kept at most (a long-running worker meets many repositories and credentials: expired tokens are
 * dropped first, then the least recently stored).
 */
export const MAX_REGISTRY_TOKENS = 256;

/** Registry tokens by registry, repository and credentials: shared by every fetch of the process. */
const tokens = new Map<string, CachedToken>();
/** Registries known to want HTTP Basic: credentials are sent at once. */
const basicRegistries = new Set<string>();

/** Forgets every cached registry token (tests, credential rotation). */
export function clearRegistryTokens(): void {
  tokens.clear();
  basicRegistries.clear();
}

/** How many registry tokens are cached (tests, diagnostics). */
export function registryTokenCount(): number {
  return tokens.size;
}

function storeToken(key: string, token: CachedToken, now: number): void {
  tokens.delete(key);
  if (tokens.size >= MAX_REGISTRY_TOKENS) {
    for (const [k, t] of tokens) if (t.refreshAt <= now) tokens.delete(k);
  }
  while (tokens.size >= MAX_REGISTRY_TOKENS) tokens.delete(tokens.keys().next().value!);
  tokens.set(key, token);
  if (basicRegistries.size > MAX_REGISTRY_TOKENS) basicRegistries.clear();
}

type Sent = 'none' | 'basic' | 'credential-token' | 'cached-token' | 'fresh-token';

/**
 * Authentication with one registry for one repository (pull): anonymous, HTTP Basic, or the bearer-token
 * challenge flow of the distribution spec (the token service named by `WWW-Authenticate: Bearer realm=…`,
 * asked with the credentials, anonymously without). Tokens are cached until shortly before they expire.
 */
export class RegistryAuth {
  private readonly key: string;
  private sent: Sent = 'none';

  /**
   * `registry` is the registry's base URL (its scheme and host judge the token realms it offers);
   * `allowedRealms` the origins of token services trusted on another scheme or host (`oci.allowedTokenRealms`).
   */
  constructor(
    private readonly ref: OciReference,
    private readonly creds: RegistryCredentials | undefined,
    private readonly dispatchers: Dispatchers,
    private readonly ctx: RequestContext,
    private readonly registry: URL,
    private readonly allowedRealms: ReadonlySet<string> = new Set(),
    private readonly now: () => number = Date.now,
  ) {
    const fp = creds ? createHash('sha256').update(JSON.stringify(creds)).digest('hex') : '-';
    this.key = `${ref.registry.toLowerCase()}\0${ref.repository}\0${fp}`;
  }

  /** The Authorization header to send before any challenge (a cached token, known Basic, or a given token). */
  initial(): string | undefined {
    const cached = tokens.get(this.key);
    if (cached && this.now() < cached.refreshAt) return this.use('cached-token', `Bearer ${cached.value}`);
    if (this.creds?.type === 'basic' && basicRegistries.has(this.ref.registry.toLowerCase())) {
      return this.use('basic', basicHeader(this.creds.username, this.creds.password));
    }
    if (this.creds?.type === 'bearer') return this.use('credential-token', `Bearer ${this.creds.token}`);
    return this.use('none', undefined);
  }

  /** The header to try after `res` (a 401), or ImageAuthRequired when nothing is left to try. */
  async answer(res: HttpResponse, signal?: AbortSignal): Promise<string> {
    const challenge = parseChallenge(header(res.headers, 'www-authenticate'));
    const where = `registry ${this.ref.registry}`;
    if (challenge?.scheme === 'basic') {
      if (this.creds?.type === 'basic' && this.sent !== 'basic') {
        basicRegistries.add(this.ref.registry.toLowerCase());
        return this.use('basic', basicHeader(this.creds.username, this.creds.password))!;
      }
      throw this.refused(
        this.sent === 'basic'
          ? `${where} refused the credentials (HTTP Basic)`
          : `${where} requires HTTP Basic credentials (configure oci.registries[].auth, or pass auth)`,
      );
    }
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      if (this.sent === 'fresh-token') {
        const why = challenge.params.error ? ` (${challenge.params.error})` : '';
        throw this.refused(`${where} refused a fresh token for ${this.ref.repository}${why}`);
      }
      tokens.delete(this.key);
      const token = await this.fetchToken(challenge.params, signal);
      return this.use('fresh-token', `Bearer ${token}`)!;
    }
    throw this.refused(`${where} answered HTTP 401 without a usable challenge`);
  }

  private use(kind: Sent, value: string | undefined): string | undefined {
    this.sent = kind;
    return value;
  }

  /** Asks the token service for a pull token (`GET realm?service=…&scope=…`). */
  private async fetchToken(params: Record<string, string>, signal?: AbortSignal): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(params.realm ?? '');
    } catch {
      throw new ImageDownloadFailed(`registry ${this.ref.registry}: its token realm is not a URL`, {
        href: this.ctx.safeHref,
        retryable: false,
      });
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new ImageDownloadFailed(`registry ${this.ref.registry}: its token realm is not an http(s) URL`, {
        href: this.ctx.safeHref,
        retryable: false,
      });
    }
    if (!realmAllowed(realm, this.registry, this.allowedRealms)) {
      // The realm is the registry's to name, and the credentials go there: a registry (or whoever answers in its
      // name) must not send them to another host, nor downgrade them to plain http.
      throw new ImageAuthRequired(
        `registry ${this.ref.registry} offers a token service on another ${
          realm.protocol !== this.registry.protocol ? 'scheme' : 'host'
        } (${realm.origin}, the registry is ${this.registry.origin}): refused, nothing was sent to it; add ` +
          `${realm.origin} to oci.allowedTokenRealms to trust it`,
        { href: this.ctx.safeHref, realm: realm.origin },
      );
    }
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.append('scope', params.scope || `repository:${this.ref.repository}:pull`);
    const c = this.creds;
    // A token is a pre-shared secret at the token service: Basic with an empty user name, as Ironic sends it.
    const authorization =
      c?.type === 'basic'
        ? basicHeader(c.username, c.password)
        : c?.type === 'bearer'
          ? basicHeader('', c.token)
          : undefined;
    const started = this.now();
    const label = labelOf(realm);
    const res = await requestFollowing({
      dispatchers: this.dispatchers,
      ctx: this.ctx,
      url: realm,
      method: 'GET',
      headers: { accept: 'application/json' },
      credentials: authorization ? { authorization } : undefined,
      signal,
      collect: MAX_TOKEN_ANSWER,
      maxRedirects: 3,
    });
    if (res.status === 401 || res.status === 403) {
      throw this.refused(
        c
          ? `the token service of registry ${this.ref.registry} refused the credentials (HTTP ${res.status})`
          : `registry ${this.ref.registry} requires credentials (its token service refused an anonymous request)`,
      );
    }
    if (!isOk(res.status)) throw statusError('GET', label, res, this.ctx.safeHref);
    const json = jsonOf(res, `GET ${label}`, this.ctx.safeHref) as {
      token?: unknown;
      access_token?: unknown;
      expires_in?: unknown;
    };
    const value = typeof json.token === 'string' && json.token ? json.token : json.access_token;
    if (typeof value !== 'string' || !value) {
      throw new ImageDownloadFailed(`GET ${label}: the token service answered without a token`, {
        href: this.ctx.safeHref,
        retryable: false,
      });
    }
    const life =
      (typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_LIFE_S) *
      1000;
    storeToken(this.key, { value, refreshAt: started + life - Math.min(10_000, life / 4) }, this.now());
    return value;
  }

  private refused(message: string): ImageAuthRequired {
    tokens.delete(this.key);
    return new ImageAuthRequired(message, { href: this.ctx.safeHref, status: 401 });
  }
}
