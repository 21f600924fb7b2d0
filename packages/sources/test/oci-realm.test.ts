import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ImageAuthRequired, ImageNotFound } from '@imagecache/errors';
import {
  clearRegistryTokens,
  closeHttpConnections,
  realmAllowed,
  resolveSource,
  type SourceOptions,
} from '@imagecache/sources';
import { caught } from './helpers';

/**
 * A registry names the token service its clients ask (with their credentials): one on another host or scheme is
 * refused unless configured (issue 9). A registry and a token service of the test's own, on two loopback
 * addresses (two hosts).
 */
interface Seen {
  url: string;
  authorization?: string;
}
let registry: http.Server;
let tokens: http.Server;
let registryHost: string;
let realmOrigin: string;
const registrySeen: Seen[] = [];
const tokenSeen: Seen[] = [];

function listen(server: http.Server, host: string): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port)),
  );
}

beforeAll(async () => {
  tokens = http.createServer((req, res) => {
    tokenSeen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ token: 'registry-token-1', expires_in: 300 }));
  });
  realmOrigin = `http://127.0.0.2:${await listen(tokens, '127.0.0.2')}`;
  registry = http.createServer((req, res) => {
    registrySeen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    if (req.headers.authorization === 'Bearer registry-token-1') {
      res.statusCode = 404; // authenticated: the manifest is not there (enough to prove the token was used)
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return;
    }
    res.statusCode = 401;
    res.setHeader(
      'www-authenticate',
      `Bearer realm="${realmOrigin}/token",service="test",scope="repository:disk/a:pull"`,
    );
    res.end();
  });
  registryHost = `127.0.0.1:${await listen(registry, '127.0.0.1')}`;
});
afterAll(async () => {
  await closeHttpConnections();
  await new Promise((r) => registry.close(r));
  await new Promise((r) => tokens.close(r));
});
beforeEach(() => {
  clearRegistryTokens();
  registrySeen.length = 0;
  tokenSeen.length = 0;
});

const href = () => `oci://${registryHost}/disk/a:v1`;
const creds = { type: 'basic' as const, username: 'puller', password: 'realm-pw-77' };

it("refuses a token realm on another host than the registry's: nothing is sent to it", async () => {
  const opts: SourceOptions = { oci: { registries: [{ host: registryHost, auth: creds }] } };
  const err = await caught(resolveSource(href(), opts).then((s) => s.show()));
  expect(err).toBeInstanceOf(ImageAuthRequired);
  expect(err.code).toBe('IMAGE_AUTH_REQUIRED');
  expect(err.message).toContain(`a token service on another host (${realmOrigin}`);
  expect(err.message).toContain('oci.allowedTokenRealms');
  expect(tokenSeen).toEqual([]); // the credentials never left for the other host
  expect(registrySeen.length).toBeGreaterThan(0);
  expect(JSON.stringify(err)).not.toContain('realm-pw-77');
});

it('follows it when its origin is configured as trusted', async () => {
  const opts: SourceOptions = {
    oci: { registries: [{ host: registryHost, auth: creds }], allowedTokenRealms: [realmOrigin] },
  };
  const err = await caught(resolveSource(href(), opts).then((s) => s.show()));
  expect(err).toBeInstanceOf(ImageNotFound); // asked with the token: the registry has no such manifest
  expect(tokenSeen).toHaveLength(1);
  expect(tokenSeen[0]?.authorization).toBe(`Basic ${Buffer.from('puller:realm-pw-77').toString('base64')}`);
  expect(registrySeen.some((r) => r.authorization === 'Bearer registry-token-1')).toBe(true);
});

it('judges realms by scheme and host: an http realm of an https registry is refused unless listed', () => {
  const none = new Set<string>();
  const reg = new URL('https://registry.example');
  expect(realmAllowed(new URL('https://registry.example/token'), reg, none)).toBe(true);
  expect(realmAllowed(new URL('https://registry.example:5001/token'), reg, none)).toBe(true);
  expect(realmAllowed(new URL('http://registry.example/token'), reg, none)).toBe(false);
  expect(realmAllowed(new URL('https://auth.example/token'), reg, none)).toBe(false);
  expect(realmAllowed(new URL('https://auth.example/token'), reg, new Set(['https://auth.example']))).toBe(
    true,
  );
  expect(
    realmAllowed(new URL('http://registry.example/token'), reg, new Set(['http://registry.example'])),
  ).toBe(true);
});
