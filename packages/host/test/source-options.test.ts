import { parseHostConfig } from '@imagecache/config';
import { sourceOptionsFor } from '@imagecache/host';
import { DEFAULT_OCI_DISK_TYPES, OCI_DISK_TYPES_FOR_CONVERSION } from '@imagecache/sources';

describe('sourceOptionsFor', () => {
  it('wires the configuration into the sources', () => {
    const config = parseHostConfig({
      caches: [
        { name: 'instance', masterDir: '/m/a' },
        { name: 'iso', masterDir: '/m/b', forceRaw: false },
      ],
      http: { inactivityTimeout: 0 },
      imageService: { endpoint: 'http://glance.example:9292', auth: { type: 'token', token: 't' } },
      oci: { platform: { architecture: 'arm64' }, registries: [{ host: 'r:5000', plainHttp: true }] },
    });
    const a = sourceOptionsFor(config, config.caches[0]);
    expect(a).toMatchObject({
      http: { inactivityTimeoutMs: 0 },
      imageService: { endpoint: 'http://glance.example:9292', auth: { type: 'token', token: 't' } },
      oci: {
        platform: { architecture: 'arm64' },
        diskTypes: OCI_DISK_TYPES_FOR_CONVERSION,
        registries: [{ host: 'r:5000', plainHttp: true }],
      },
    });
    expect(sourceOptionsFor(config, config.caches[1]).oci?.diskTypes).toEqual(DEFAULT_OCI_DISK_TYPES);
  });

  it("sends a cache's own credentials, else the host's, to their origins only", () => {
    const host = { type: 'bearer', token: 'host-token', origins: ['https://a.example'] };
    const own = { type: 'bearer', token: 'cache-token', origins: ['https://b.example'] };
    const config = parseHostConfig({
      caches: [
        { name: 'instance', masterDir: '/m/a' },
        { name: 'own', masterDir: '/m/b', auth: own },
      ],
      http: { auth: host },
    });
    expect(sourceOptionsFor(config, config.caches[0]).http).toMatchObject({
      auth: { type: 'bearer', token: 'host-token' },
      authOrigins: ['https://a.example'],
    });
    expect(sourceOptionsFor(config, config.caches[1]).http).toMatchObject({
      auth: { type: 'bearer', token: 'cache-token' },
      authOrigins: ['https://b.example'],
    });
    // Without configured credentials, none (and no origins) reach the sources.
    const bare = parseHostConfig({ caches: [{ name: 'instance', masterDir: '/m/a' }] });
    expect(sourceOptionsFor(bare, bare.caches[0]).http).not.toHaveProperty('auth');
    expect(sourceOptionsFor(bare, bare.caches[0]).http).not.toHaveProperty('authOrigins');
  });
});
