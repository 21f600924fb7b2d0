// Registry auth against real docker-registry servers: HTTP Basic (htpasswd) and the bearer-token challenge flow
// (the registry's token auth, with the recipe's token service).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageAuthRequired, ImageDownloadFailed, UsageError } from '@imagecache/errors';
import {
  clearRegistryTokens,
  closeHttpConnections,
  fromPullSecret,
  parseChallenge,
  resolveSource,
  type SourceOptions,
} from '@imagecache/sources';
import { caught, readAll } from './helpers';
import { startRegistry, startTogether, type Registry } from './servers/servers';

const disk = randomBytes(100_000);
const repo = 'secure/disk';
let basicReg: Registry;
let tokenReg: Registry;
let basicDigest: string;
let tokenDigest: string;

beforeAll(async () => {
  [basicReg, tokenReg] = await startTogether<[Registry, Registry]>(
    startRegistry('htpasswd'),
    startRegistry('token'),
  );
  basicDigest = (await basicReg.pushArtifact(repo, [{ data: disk }], { tag: 'v1' })).digest;
  tokenDigest = (await tokenReg.pushArtifact(repo, [{ data: disk }], { tag: 'v1' })).digest;
}, 30_000);
afterAll(async () => {
  await closeHttpConnections();
  await basicReg?.stop();
  await tokenReg?.stop();
});
beforeEach(() => clearRegistryTokens());

async function fetchAll(href: string, opts: SourceOptions): Promise<Buffer> {
  const s = await resolveSource(href, opts);
  await s.show();
  return readAll((await s.open()).stream);
}

/** Every text an error shows: message, JSON (details), and the causes' messages. */
function shown(err: Error): string {
  const json = JSON.stringify((err as { toJSON?: () => unknown }).toJSON?.() ?? {});
  return `${err.message}\n${json}\n${String((err as { cause?: Error }).cause?.message ?? '')}`;
}

describe('registry with HTTP Basic (htpasswd)', () => {
  const href = () => `oci://${basicReg.host}/${repo}@${basicDigest}`;
  const creds = () => ({ type: 'basic' as const, username: basicReg.user, password: basicReg.password });

  it('refuses anonymous pulls with ImageAuthRequired', async () => {
    const err = await caught(resolveSource(href()).then((s) => s.show()));
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/requires HTTP Basic credentials/);
  });

  it('pulls with the credentials configured for the registry', async () => {
    const opts: SourceOptions = { oci: { registries: [{ host: basicReg.host, auth: creds() }] } };
    expect((await fetchAll(href(), opts)).equals(disk)).toBe(true);
    // by tag too, the registry now known to want Basic (sent at once)
    expect((await fetchAll(`oci://${basicReg.host}/${repo}:v1`, opts)).equals(disk)).toBe(true);
  });

  it("pulls with the request's own credentials, and with a pull secret", async () => {
    expect((await fetchAll(href(), { auth: creds() })).equals(disk)).toBe(true);
    const dockerConfigJson = JSON.stringify({
      auths: {
        'other.example': { auth: Buffer.from('x:y').toString('base64') },
        [basicReg.host]: { auth: Buffer.from(`${basicReg.user}:${basicReg.password}`).toString('base64') },
      },
    });
    expect((await fetchAll(href(), { auth: { type: 'pullSecret', dockerConfigJson } })).equals(disk)).toBe(
      true,
    );
  });

  it('refuses a wrong password without showing it', async () => {
    const wrong = 'Wr0ng-Pa55word-XYZ';
    const opts: SourceOptions = { auth: { type: 'basic', username: basicReg.user, password: wrong } };
    const err = await caught(resolveSource(href(), opts).then((s) => s.show()));
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/refused the credentials/);
    expect(shown(err)).not.toContain(wrong);
    expect(shown(err)).not.toContain(Buffer.from(`${basicReg.user}:${wrong}`).toString('base64'));
  });
});

describe('registry with token auth (Bearer challenge, token service)', () => {
  const href = () => `oci://${tokenReg.host}/${repo}@${tokenDigest}`;

  it('gets a token with the configured credentials and pulls', async () => {
    const opts: SourceOptions = {
      oci: {
        registries: [
          {
            host: tokenReg.host,
            auth: { type: 'basic', username: tokenReg.user, password: tokenReg.password },
          },
        ],
      },
    };
    expect((await fetchAll(href(), opts)).equals(disk)).toBe(true);
    expect((await fetchAll(`oci://${tokenReg.host}/${repo}:v1`, opts)).equals(disk)).toBe(true);
  });

  it('uses a bearer secret as Ironic does (Basic with an empty user at the token service)', async () => {
    expect(
      (await fetchAll(href(), { auth: { type: 'bearer', token: tokenReg.password } })).equals(disk),
    ).toBe(true);
  });

  it('refuses anonymous pulls and wrong credentials with ImageAuthRequired, showing no secret', async () => {
    const anon = await caught(resolveSource(href()).then((s) => s.show()));
    expect(anon).toBeInstanceOf(ImageAuthRequired);
    expect(anon.message).toMatch(/requires credentials/);
    const wrong = 'not-the-Secret-42';
    for (const auth of [
      { type: 'basic' as const, username: tokenReg.user, password: wrong },
      { type: 'bearer' as const, token: wrong },
    ]) {
      const err = await caught(resolveSource(href(), { auth }).then((s) => s.show()));
      expect(err).toBeInstanceOf(ImageAuthRequired);
      expect(err.message).toMatch(/token service .* refused the credentials/);
      expect(shown(err)).not.toContain(wrong);
    }
  });

  it('reuses a cached token until it expires (the token service is not asked again)', async () => {
    const opts: SourceOptions = {
      auth: { type: 'basic', username: tokenReg.user, password: tokenReg.password },
    };
    expect((await fetchAll(href(), opts)).equals(disk)).toBe(true);
    // Stop the token service: the cached token still serves.
    const pid = Number(fs.readFileSync(path.join(tokenReg.dir, 'token.pid'), 'utf8'));
    process.kill(pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetchAll(href(), opts)).equals(disk)).toBe(true);
    clearRegistryTokens();
    const err = await caught(resolveSource(href(), opts).then((s) => s.show()));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.message).toMatch(/connection refused/);
  });
});

describe('challenges and pull secrets', () => {
  it('parses Bearer and Basic challenges', () => {
    expect(
      parseChallenge(
        'Bearer realm="http://h:1/token",service="test-registry",scope="repository:a/b:pull",error="invalid_token"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'http://h:1/token',
        service: 'test-registry',
        scope: 'repository:a/b:pull',
        error: 'invalid_token',
      },
    });
    expect(parseChallenge('Basic realm="test-registry"')).toEqual({
      scheme: 'basic',
      params: { realm: 'test-registry' },
    });
    expect(parseChallenge(undefined)).toBeUndefined();
  });

  it('reads the entry of a registry from a .dockerconfigjson or .dockercfg', () => {
    const auth = Buffer.from('u:p:w').toString('base64');
    expect(
      fromPullSecret(JSON.stringify({ auths: { 'https://reg:5000/v1/': { auth } } }), 'reg:5000'),
    ).toEqual({
      type: 'basic',
      username: 'u',
      password: 'p:w',
    });
    expect(fromPullSecret(JSON.stringify({ 'reg:5000': { registrytoken: 'tok' } }), 'reg:5000')).toEqual({
      type: 'bearer',
      token: 'tok',
    });
    expect(fromPullSecret(JSON.stringify({ auths: {} }), 'reg:5000')).toBeUndefined();
    expect(() => fromPullSecret('{not json', 'reg')).toThrow(UsageError);
  });
});
