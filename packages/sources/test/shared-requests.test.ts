// Issue 11, open items: a shared Keystone token request no single caller's cancel can abort; an OCI tag's
// resolution that a cancel stops; a registry token cache that stays bounded.
import * as http from 'node:http';
import { OperationAborted } from '@imagecache/errors';
import {
  clearRegistryTokens,
  closeHttpConnections,
  KeystoneSession,
  MAX_REGISTRY_TOKENS,
  registryTokenCount,
  resolveHttpOptions,
  resolveSource,
} from '@imagecache/sources';
import { caught } from './helpers';
import { closeServer, listenLocal } from '@imagecache/testing';

/** Answers after `delayMs`; counts requests by path prefix. */
let server: http.Server;
let base = '';
let delayMs = 0;
const counts = new Map<string, number>();
const pendingTimers = new Set<NodeJS.Timeout>();
const MANIFEST = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'4'.repeat(64)}`, size: 2 },
  layers: [{ mediaType: 'application/octet-stream', digest: `sha256:${'a'.repeat(64)}`, size: 5 }],
});

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const kind = url.pathname.startsWith('/v3/auth/tokens')
      ? 'keystone'
      : url.pathname === '/token'
        ? 'token'
        : url.pathname.includes('/manifests/')
          ? 'manifest'
          : 'other';
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    req.resume();
    const answer = () => {
      if (kind === 'keystone') {
        const expires = new Date(Date.now() + 3600_000).toISOString();
        res.writeHead(201, { 'content-type': 'application/json', 'x-subject-token': 'tok-1' });
        res.end(JSON.stringify({ token: { expires_at: expires, catalog: [] } }));
      } else if (kind === 'token') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: `t-${url.searchParams.get('scope')}`, expires_in: 300 }));
      } else if (kind === 'manifest') {
        if (!req.headers.authorization) {
          const realm = `${base}/token`;
          res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="reg"` });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        res.end(MANIFEST);
      } else res.writeHead(404).end();
    };
    if (delayMs > 0) {
      const t = setTimeout(answer, delayMs);
      pendingTimers.add(t);
    } else answer();
  });
  base = await listenLocal(server);
});
beforeEach(() => {
  counts.clear();
  delayMs = 0;
  clearRegistryTokens();
});
afterAll(async () => {
  for (const t of pendingTimers) clearTimeout(t);
  await closeServer(server);
  await closeHttpConnections();
});

describe('Keystone token request shared by callers', () => {
  it("one caller's cancel ends its own wait only: the others get the token from the one request", async () => {
    delayMs = 300;
    const session = new KeystoneSession(
      { authUrl: base, username: 'u', password: 'p' },
      resolveHttpOptions({ inactivityTimeoutMs: 10_000 }),
    );
    const first = new AbortController();
    const a = session.token(first.signal);
    const b = session.token();
    setTimeout(() => first.abort(), 50);
    const errA = await caught(a);
    expect(errA).toBeInstanceOf(OperationAborted);
    await expect(b).resolves.toMatchObject({ value: 'tok-1' });
    expect(counts.get('keystone')).toBe(1);
    expect(session.issued).toBe(1);
  });

  it('drops the request once every caller has gone', async () => {
    delayMs = 300;
    const session = new KeystoneSession(
      { authUrl: base, username: 'u', password: 'p' },
      resolveHttpOptions({ inactivityTimeoutMs: 10_000 }),
    );
    const ac = new AbortController();
    const a = session.token(ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await caught(a)).toBeInstanceOf(OperationAborted);
    await new Promise((r) => setTimeout(r, 400));
    expect(session.issued).toBe(0);
    // a later caller starts afresh
    delayMs = 0;
    await expect(session.token()).resolves.toMatchObject({ value: 'tok-1' });
  });
});

describe('OCI', () => {
  it("a tag's resolution stops on cancel", async () => {
    delayMs = 2000;
    const host = new URL(base).host;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const started = Date.now();
    const err = await caught(resolveSource(`oci://${host}/repo/disk:latest`, {}, ac.signal));
    expect(err).toBeInstanceOf(OperationAborted);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('keeps at most MAX_REGISTRY_TOKENS registry tokens', async () => {
    const host = new URL(base).host;
    const n = MAX_REGISTRY_TOKENS + 20;
    for (let i = 0; i < n; i += 16) {
      await Promise.all(
        Array.from({ length: Math.min(16, n - i) }, (_, j) =>
          resolveSource(`oci://${host}/repo-${i + j}/disk:latest`),
        ),
      );
    }
    expect(counts.get('token')).toBe(n);
    expect(registryTokenCount()).toBeLessThanOrEqual(MAX_REGISTRY_TOKENS);
    expect(registryTokenCount()).toBeGreaterThan(0);
  });
});
