import { configForSingleCache, parseHostConfig } from '@imagecache/config';
import { configError, everything, issuesOf } from './helpers';

const base = { caches: [{ name: 'instance', masterDir: '/srv/master' }] };

describe('imageService', () => {
  test('endpoint, static token and Keystone password auth', () => {
    const keystone = {
      type: 'keystone',
      authUrl: 'http://keystone.example:5000/v3',
      username: 'ironic',
      password: 'pw',
      projectName: 'service',
      userDomainName: 'Default',
    };
    const c = parseHostConfig({
      ...base,
      imageService: { endpoint: 'http://glance.example:9292', auth: keystone },
    });
    expect(c.imageService).toEqual({
      endpoint: 'http://glance.example:9292',
      auth: keystone,
      interface: 'public',
    });
    const t = parseHostConfig({
      ...base,
      imageService: { auth: { type: 'token', token: 'tok' }, region: 'R2' },
    });
    expect(t.imageService).toEqual({
      auth: { type: 'token', token: 'tok' },
      interface: 'public',
      region: 'R2',
    });
  });

  test('refuses a bad endpoint, an unknown auth key (with a hint), both a project name and id', () => {
    const err = configError(() =>
      parseHostConfig({
        ...base,
        imageService: {
          endpoint: 'glance.example:9292',
          auth: {
            type: 'keystone',
            authUrl: 'http://k',
            username: 'u',
            password: 'p',
            projectName: 'a',
            projectId: 'b',
            projetDomainName: 'x',
          },
        },
      }),
    );
    expect(issuesOf(err).map((i) => `${i.path}: ${i.message}`)).toEqual(
      expect.arrayContaining([
        'imageService.endpoint: must be an http:// or https:// URL',
        'imageService.auth.projetDomainName: unknown key (did you mean projectDomainName?)',
      ]),
    );
    const both = configError(() =>
      parseHostConfig({
        ...base,
        imageService: {
          auth: {
            type: 'keystone',
            authUrl: 'http://k',
            username: 'u',
            password: 'p',
            projectName: 'a',
            projectId: 'b',
          },
        },
      }),
    );
    expect(issuesOf(both)).toEqual([
      { path: 'imageService.auth.projectId', message: 'give projectName or projectId, not both' },
    ]);
  });

  test('never quotes a password or a token', () => {
    const err = configError(() =>
      parseHostConfig({
        ...base,
        imageService: {
          auth: {
            type: 'keystone',
            authUrl: 'http://k',
            username: 'u',
            password: 'Hunter2-Secret',
            extra: 1,
          },
        },
        oci: { registries: [{ host: 'r', auth: { type: 'bearer', token: 'Tok-Secret-9', x: 1 } }] },
      }),
    );
    expect(everything(err)).not.toContain('Hunter2-Secret');
    expect(everything(err)).not.toContain('Tok-Secret-9');
  });

  test('IMAGECACHE_IMAGE_SERVICE_ENDPOINT sets the endpoint, also in the single-cache mode', () => {
    const env = { IMAGECACHE_IMAGE_SERVICE_ENDPOINT: 'http://127.0.0.1:9292' };
    expect(configForSingleCache({ masterDir: '/srv/m', env }).imageService.endpoint).toBe(
      'http://127.0.0.1:9292',
    );
    const err = configError(() =>
      configForSingleCache({ masterDir: '/srv/m', env: { IMAGECACHE_IMAGE_SERVICE_ENDPOINT: 'nope' } }),
    );
    expect(issuesOf(err)[0]).toMatchObject({
      path: 'imageService.endpoint',
      env: 'IMAGECACHE_IMAGE_SERVICE_ENDPOINT',
    });
  });
});

describe('oci', () => {
  test('platform, disk types and registries', () => {
    const c = parseHostConfig({
      ...base,
      oci: {
        platform: { architecture: 'arm64' },
        diskTypes: ['qcow2', 'raw'],
        registries: [
          { host: '127.0.0.1:5000' },
          {
            host: 'registry.example',
            auth: { type: 'basic', username: 'u', password: 'p' },
            plainHttp: false,
            caFile: '/etc/ca.pem',
          },
        ],
      },
    });
    expect(c.oci).toEqual({
      platform: { architecture: 'arm64' },
      diskTypes: ['qcow2', 'raw'],
      registries: [
        { host: '127.0.0.1:5000' },
        {
          host: 'registry.example',
          auth: { type: 'basic', username: 'u', password: 'p' },
          plainHttp: false,
          caFile: '/etc/ca.pem',
        },
      ],
    });
  });

  test('refuses a malformed or duplicate registry host and misplaced keys', () => {
    const err = configError(() =>
      parseHostConfig({
        ...base,
        oci: { registries: [{ host: 'oci://r/x' }, { host: 'R:5000' }, { host: 'r:5000' }], platfrom: {} },
      }),
    );
    expect(issuesOf(err).map((i) => `${i.path}: ${i.message}`)).toEqual(
      expect.arrayContaining([
        'oci.registries[0].host: must be HOST or HOST:PORT, as in the oci:// href',
        'oci.registries[2].host: is used by registries[1] too',
        'oci.platfrom: unknown key (did you mean platform?)',
      ]),
    );
  });
});
