// Token auth for the image service: a real Keystone (Debian's python3-keystone) and a Glance behind it
// (keystonemiddleware's authtoken), both on loopback.
import { createHash, randomBytes } from 'node:crypto';
import { ConfigError, ImageAuthRequired } from '@imagecache/errors';
import {
  clearKeystoneSessions,
  closeHttpConnections,
  KeystoneSession,
  keystoneSession,
  resolveHttpOptions,
  resolveSource,
  type KeystoneCredentials,
  type SourceOptions,
} from '@imagecache/sources';
import { caught, readAll } from './helpers';
import {
  freePort,
  startGlance,
  startKeystone,
  startTogether,
  type Glance,
  type Keystone,
} from './servers/servers';

let keystone: Keystone;
let glance: Glance;
let id: string;
const data = randomBytes(64 * 1024);
const sha512 = createHash('sha512').update(data).digest('hex');
let creds: KeystoneCredentials;

const http = resolveHttpOptions({ inactivityTimeoutMs: 30_000 });

beforeAll(async () => {
  // Glance asks Keystone only when a request comes: both start at once.
  const [glancePort, keystonePort] = [await freePort(), await freePort()];
  [keystone, glance] = await startTogether<[Keystone, Glance]>(
    startKeystone({ imageUrl: `http://127.0.0.1:${glancePort}`, port: keystonePort }),
    startGlance('keystone', { keystoneUrl: `http://127.0.0.1:${keystonePort}`, port: glancePort }),
  );
  const demo = await keystone.token('demo', 'demopw', 'demo');
  id = await glance.createImage(data, { name: 'private-disk' }, { 'x-auth-token': demo });
  creds = { authUrl: keystone.url, username: 'demo', password: 'demopw', projectName: 'demo' };
}, 90_000);
afterAll(async () => {
  await closeHttpConnections();
  await glance?.stop();
  await keystone?.stop();
});
beforeEach(() => clearKeystoneSessions());

async function fetchAll(href: string, opts: SourceOptions): Promise<Buffer> {
  const s = await resolveSource(href, opts);
  const info = await s.show();
  expect(info.checksum).toEqual({ algo: 'sha512', value: sha512 });
  return readAll((await s.open()).stream);
}

function shown(err: Error): string {
  return `${err.message}\n${JSON.stringify((err as ImageAuthRequired).toJSON())}`;
}

describe('image service behind Keystone', () => {
  it('fetches with Keystone v3 password auth; one token serves every request', async () => {
    const opts: SourceOptions = {
      imageService: { endpoint: glance.url, auth: { type: 'keystone', ...creds } },
    };
    expect((await fetchAll(id, opts)).equals(data)).toBe(true);
    expect((await fetchAll(`glance://${id}`, opts)).equals(data)).toBe(true);
    expect(keystoneSession(creds, http).issued).toBe(1);
  });

  it('refuses requests without a token: ImageAuthRequired naming the missing configuration', async () => {
    const err = await caught(
      resolveSource(id, { imageService: { endpoint: glance.url } }).then((s) => s.show()),
    );
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/HTTP 401 .*requires authentication \(configure imageService\.auth\)/);
  });

  it("uses a static token, and the request's own token (X-Auth-Token)", async () => {
    const token = await keystone.token('demo', 'demopw', 'demo');
    expect(
      (await fetchAll(id, { imageService: { endpoint: glance.url, auth: { type: 'token', token } } })).equals(
        data,
      ),
    ).toBe(true);
    expect(
      (
        await fetchAll(id, { imageService: { endpoint: glance.url }, auth: { type: 'bearer', token } })
      ).equals(data),
    ).toBe(true);
    const bad = 'gAAAAA-not-a-token';
    const err = await caught(
      resolveSource(id, { imageService: { endpoint: glance.url, auth: { type: 'token', token: bad } } }).then(
        (s) => s.show(),
      ),
    );
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/refused the configured token/);
    expect(shown(err)).not.toContain(bad);
  });

  it('refuses wrong credentials with a clear error and without showing them', async () => {
    const wrong = { ...creds, password: 'Not-Demo-PW-123' };
    const err = await caught(
      resolveSource(id, {
        imageService: { endpoint: glance.url, auth: { type: 'keystone', ...wrong } },
      }).then((s) => s.show()),
    );
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/Keystone refused the configured credentials \(HTTP 401\)/);
    expect(shown(err)).not.toContain('Not-Demo-PW-123');
    expect(shown(err)).not.toMatch(/demo/);
  });

  it('renews a revoked token once, then fails clearly when Keystone refuses the credentials', async () => {
    // A user of its own, whose password changes half-way.
    const project = (await (await keystone.admin('GET', '/v3/projects?name=demo')).json()) as {
      projects: { id: string }[];
    };
    const user = (await (
      await keystone.admin('POST', '/v3/users', {
        user: { name: 'rotating', password: 'rot-pw-1', domain_id: 'default' },
      })
    ).json()) as { user: { id: string } };
    const roles = (await (await keystone.admin('GET', '/v3/roles?name=member')).json()) as {
      roles: { id: string }[];
    };
    const grant = await keystone.admin(
      'PUT',
      `/v3/projects/${project.projects[0]!.id}/users/${user.user.id}/roles/${roles.roles[0]!.id}`,
    );
    expect(grant.status).toBe(204);
    const mine: KeystoneCredentials = {
      authUrl: `${keystone.url}/v3`,
      username: 'rotating',
      password: 'rot-pw-1',
      projectName: 'demo',
    };
    const opts: SourceOptions = {
      imageService: { endpoint: glance.url, auth: { type: 'keystone', ...mine } },
    };
    const session = keystoneSession(mine, http);
    const first = await session.token();

    const revoke = await keystone.admin('DELETE', '/v3/auth/tokens', undefined, {
      'x-subject-token': first.value,
    });
    expect(revoke.status).toBe(204);
    expect((await fetchAll(id, opts)).equals(data)).toBe(true); // 401 → new token → 200
    expect(session.issued).toBe(2);

    const second = await session.token();
    await keystone.admin('DELETE', '/v3/auth/tokens', undefined, { 'x-subject-token': second.value });
    const change = await keystone.admin('PATCH', `/v3/users/${user.user.id}`, {
      user: { password: 'rot-pw-2' },
    });
    expect(change.status).toBe(200);
    const err = await caught(resolveSource(id, opts).then((s) => s.show()));
    expect(err).toBeInstanceOf(ImageAuthRequired);
    expect(err.message).toMatch(/Keystone refused the configured credentials/);
    expect(shown(err)).not.toContain('rot-pw');
  });

  it('renews a token shortly before it expires', async () => {
    let now = Date.now();
    const session = new KeystoneSession(creds, http, () => now);
    const a = await session.token();
    expect(a.expiresAt - Date.now()).toBeGreaterThan(3000_000); // Keystone's default: 1 h
    expect((await session.token()).value).toBe(a.value);
    now = a.refreshAt - 1000;
    expect((await session.token()).value).toBe(a.value);
    now = a.refreshAt + 1;
    await new Promise((r) => setTimeout(r, 1100)); // Fernet tokens issued within one second are identical
    const b = await session.token();
    expect(session.issued).toBe(2);
    expect(b.value).not.toBe(a.value);
    expect(a.expiresAt - a.refreshAt).toBe(60_000);
  });

  it('finds the image endpoint in the Keystone catalog when none is configured', async () => {
    // Keystone's catalog lists this Glance as the public image endpoint of RegionOne (see beforeAll).
    const opts: SourceOptions = { imageService: { auth: { type: 'keystone', ...creds } } };
    expect((await fetchAll(id, opts)).equals(data)).toBe(true);
    const err = await caught(
      resolveSource(id, {
        imageService: { auth: { type: 'keystone', ...creds }, interface: 'internal' },
      }).then((s) => s.show()),
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/lists no internal image endpoint/);
    const region = await caught(
      resolveSource(id, { imageService: { auth: { type: 'keystone', ...creds }, region: 'RegionTwo' } }).then(
        (s) => s.show(),
      ),
    );
    expect(region.message).toMatch(/lists no public image endpoint in region RegionTwo/);
  });
});
