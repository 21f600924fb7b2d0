import * as os from 'node:os';
import { HostConfigSchema, parseHostConfig, type HostConfigInput } from '@imagecache/config';
import { configError, everything, issuesOf } from './helpers';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const one = (extra: Record<string, unknown> = {}) => ({
  caches: [{ name: 'instance', masterDir: '/srv/master', ...extra }],
});

describe('defaults', () => {
  test('a minimal configuration gets every default', () => {
    expect(parseHostConfig(one())).toEqual({
      host: os.hostname(),
      caches: [
        {
          name: 'instance',
          masterDir: '/srv/master',
          cacheSize: 20 * GiB,
          cacheTtl: 604800,
          priority: 50,
          forceRaw: true,
          validate: true,
          permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
        },
      ],
      downloadConcurrency: 20,
      downloadSlotsDir: `${os.tmpdir()}/imagecache-download-slots`,
      growthFactor: 2,
      permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
      zstd: true,
      directIo: true,
      allowMd5: true,
      sweepInterval: 3600,
      createDestDirs: false,
      file: { allowedRoots: ['/var/lib/imagecache/files'], allowHardLinks: false },
      destinations: { unrestricted: false },
      http: {
        inactivityTimeout: 60,
        connectTimeout: 30,
        verifyTls: true,
        minTlsVersion: 'TLSv1.2',
        minRate: 1024,
        minRateWindow: 60,
        blockedNetworks: [],
        allowHttpsToHttpRedirect: false,
      },
      qemuImg: { memoryCap: 2 * GiB },
      imageService: { auth: { type: 'none' }, interface: 'public' },
      oci: { platform: {}, registries: [] },
      peers: { enabled: false, bind: '127.0.0.1', uploadConcurrency: 4, tokenTtl: 60 },
      logLevel: 'info',
    });
  });

  test('defaults are fresh copies, not shared', () => {
    const a = parseHostConfig(one());
    a.permittedFormats.push('vmdk');
    a.file.allowedRoots.push('/x');
    const b = parseHostConfig(one());
    expect(b.permittedFormats).toEqual(['raw', 'gpt', 'qcow2', 'iso']);
    expect(b.file.allowedRoots).toEqual(['/var/lib/imagecache/files']);
  });

  test('priority defaults by preset name, accepts numbers and preset names', () => {
    const c = parseHostConfig({
      caches: [
        { name: 'iso', masterDir: '/a' },
        { name: 'tftp', masterDir: '/b' },
        { name: 'instance', masterDir: '/c' },
        { name: 'other', masterDir: '/d' },
        { name: 'e', masterDir: '/e', priority: 90 },
        { name: 'f', masterDir: '/f', priority: 'tftp' },
        { name: 'tftp2', masterDir: '/g', priority: -1 },
      ],
    });
    expect(c.caches.map((x) => x.priority)).toEqual([75, 25, 50, 50, 90, 25, -1]);
    const err = configError(() => parseHostConfig(one({ priority: 'high' })));
    expect(err.message).toContain(
      'caches[0].priority: must be an integer or one of iso (75), instance (50), tftp (25)',
    );
    configError(() => parseHostConfig(one({ priority: 1.5 })));
  });

  test('a cache without permittedFormats gets the host list; its own list wins', () => {
    const c = parseHostConfig({
      permittedFormats: ['raw', 'qcow2'],
      caches: [
        { name: 'a', masterDir: '/a' },
        { name: 'b', masterDir: '/b', permittedFormats: ['iso', 'iso'] },
      ],
    });
    expect(c.caches[0]?.permittedFormats).toEqual(['raw', 'qcow2']);
    expect(c.caches[1]?.permittedFormats).toEqual(['iso']);
    const err = configError(() => parseHostConfig({ ...one(), permittedFormats: ['qcow'] }));
    expect(err.message).toContain('permittedFormats[0]: "qcow" is not one of raw, gpt, qcow2, iso');
  });
});

describe('sizes and durations', () => {
  test('every form, into bytes and seconds', () => {
    const c = parseHostConfig({
      caches: [
        { name: 'a', masterDir: '/a', cacheSize: '500MiB', cacheTtl: '15m' },
        { name: 'b', masterDir: '/b', cacheSize: 1024, cacheTtl: 30 },
        { name: 'c', masterDir: '/c', cacheSize: '1.5GiB', cacheTtl: '7d' },
        { name: 'd', masterDir: '/d', cacheSize: '100M', cacheTtl: '1h' },
        { name: 'e', masterDir: '/e', cacheSize: '100MB', cacheTtl: '30s' },
        { name: 'f', masterDir: '/f', cacheSize: 0, cacheTtl: 0 },
        { name: 'g', masterDir: '/g', cacheSize: '0', cacheTtl: '3600' },
      ],
      sweepInterval: '0',
      http: { inactivityTimeout: '2m', connectTimeout: 5 },
      qemuImg: { memoryCap: '1GiB' },
    });
    expect(c.caches.map((x) => x.cacheSize)).toEqual([500 * MiB, 1024, 1.5 * GiB, 1e8, 1e8, 0, 0]);
    expect(c.caches.map((x) => x.cacheTtl)).toEqual([900, 30, 604800, 3600, 30, 0, 3600]);
    expect(c.sweepInterval).toBe(0);
    expect(c.http.inactivityTimeout).toBe(120);
    expect(c.http.connectTimeout).toBe(5);
    expect(c.qemuImg.memoryCap).toBe(GiB);
  });

  test('a bad size is a ConfigError naming caches[0].cacheSize', () => {
    const err = configError(() => parseHostConfig(one({ cacheSize: 'abc' })));
    expect(err.message).toContain(
      'caches[0].cacheSize: "abc" is not a size (use bytes or units such as 500MiB, 20GiB)',
    );
    expect(issuesOf(err)).toEqual([
      {
        path: 'caches[0].cacheSize',
        message: '"abc" is not a size (use bytes or units such as 500MiB, 20GiB)',
      },
    ]);
  });

  test('http.blockedNetworks accepts CIDRs and addresses, refuses anything else by index', () => {
    const ok = parseHostConfig({ ...one(), http: { blockedNetworks: ['10.0.0.0/8', '[fd00::]/8', '::1'] } });
    expect(ok.http.blockedNetworks).toEqual(['10.0.0.0/8', '[fd00::]/8', '::1']);
    const err = configError(() =>
      parseHostConfig({ ...one(), http: { blockedNetworks: ['10.0.0.0/33', 'example.com'] } }),
    );
    expect(issuesOf(err).map((i) => i.path)).toEqual(['http.blockedNetworks[0]', 'http.blockedNetworks[1]']);
  });

  test.each([['-1GiB'], [-5], [''], [true], [null], [[1]]])('cacheSize %p is refused', (v) => {
    const err = configError(() => parseHostConfig(one({ cacheSize: v })));
    expect(issuesOf(err)[0]?.path).toBe('caches[0].cacheSize');
  });

  test('bad durations name their key', () => {
    const err = configError(() =>
      parseHostConfig({
        ...one({ cacheTtl: 'a week' }),
        sweepInterval: '-1h',
        http: { connectTimeout: 'soon' },
      }),
    );
    expect(issuesOf(err).map((i) => i.path)).toEqual([
      'caches[0].cacheTtl',
      'sweepInterval',
      'http.connectTimeout',
    ]);
    expect(err.message).toContain('caches[0].cacheTtl: "a week" is not a duration');
  });
});

describe('refusals', () => {
  test('every problem is listed, one per line, in one error', () => {
    const err = configError(() =>
      parseHostConfig({
        caches: [{ name: 'a', masterDir: 'relative', cacheSize: 'abc' }],
        downloadConcurrency: 0,
        growthFactor: 0.5,
        logLevel: 'loud',
      }),
    );
    expect(issuesOf(err).map((i) => i.path)).toEqual([
      'caches[0].masterDir',
      'caches[0].cacheSize',
      'downloadConcurrency',
      'growthFactor',
      'logLevel',
    ]);
    expect(err.message.split('\n')).toHaveLength(6);
    expect(err.message).toMatch(
      /^invalid configuration:\n {2}caches\[0\]\.masterDir: "relative" is not an absolute path\n/,
    );
  });

  test('unknown keys are refused, by path, with a suggestion', () => {
    const err = configError(() =>
      parseHostConfig({
        ...one({ cache_size: '1GiB' }),
        cacheSzie: 1,
        http: { verifyTLS: false },
        redis: { url: 'redis://h', prefx: 'x' },
        frobnicate: true,
        verifyTls: false,
        cacheTTL: '1d',
      }),
    );
    expect(issuesOf(err)).toEqual(
      expect.arrayContaining([
        { path: 'caches[0].cache_size', message: 'unknown key (did you mean cacheSize?)' },
        { path: 'cacheSzie', message: 'unknown key' },
        { path: 'cacheTTL', message: 'unknown key (did you mean caches[].cacheTtl?)' },
        { path: 'verifyTls', message: 'unknown key (did you mean http.verifyTls?)' },
        { path: 'http.verifyTLS', message: 'unknown key (did you mean verifyTls?)' },
        { path: 'redis.prefx', message: 'unknown key (did you mean prefix?)' },
        { path: 'frobnicate', message: 'unknown key' },
      ]),
    );
  });

  test('duplicate cache names are refused', () => {
    const err = configError(() =>
      parseHostConfig({
        caches: [
          { name: 'a', masterDir: '/a' },
          { name: 'a', masterDir: '/b' },
        ],
      }),
    );
    expect(issuesOf(err)).toEqual([{ path: 'caches[1].name', message: '"a" is used by caches[0] too' }]);
  });

  test('names that clash as environment variable names are refused', () => {
    const err = configError(() =>
      parseHostConfig({
        caches: [
          { name: 'my-cache', masterDir: '/a' },
          { name: 'MY_CACHE', masterDir: '/b' },
        ],
      }),
    );
    expect(issuesOf(err)[0]?.path).toBe('caches[1].name');
    expect(err.message).toContain('IMAGECACHE_CACHE_MY_CACHE_*');
  });

  test('duplicate master folders are refused, however written', () => {
    const err = configError(() =>
      parseHostConfig({
        caches: [
          { name: 'a', masterDir: '/srv/m' },
          { name: 'b', masterDir: '/srv/x/../m/' },
        ],
      }),
    );
    expect(issuesOf(err)).toEqual([
      { path: 'caches[1].masterDir', message: '"/srv/m" is used by caches[0] too' },
    ]);
  });

  test('duplicates are reported along with other problems', () => {
    const err = configError(() =>
      parseHostConfig({
        caches: [
          { name: 'a', masterDir: '/a', cacheSize: 'abc' },
          { name: 'a', masterDir: '/a' },
        ],
      }),
    );
    expect(issuesOf(err).map((i) => i.path)).toEqual([
      'caches[0].cacheSize',
      'caches[1].name',
      'caches[1].masterDir',
    ]);
  });

  test('a relative master folder, the root folder, a bad name are refused', () => {
    expect(issuesOf(configError(() => parseHostConfig(one({ masterDir: 'var/cache' }))))).toEqual([
      { path: 'caches[0].masterDir', message: '"var/cache" is not an absolute path' },
    ]);
    expect(configError(() => parseHostConfig(one({ masterDir: '/' }))).message).toContain(
      'caches[0].masterDir: must not be the root folder',
    );
    expect(configError(() => parseHostConfig(one({ name: 'a b' }))).message).toContain(
      'caches[0].name: must be',
    );
    expect(configError(() => parseHostConfig(one({ name: '' }))).message).toContain(
      'caches[0].name: must be',
    );
  });

  test('no caches, or an empty list, is refused', () => {
    expect(configError(() => parseHostConfig({})).message).toBe('invalid configuration: caches: is required');
    expect(configError(() => parseHostConfig({ caches: [] })).message).toContain(
      'caches: must have at least 1 entry',
    );
    expect(configError(() => parseHostConfig('caches')).message).toContain(
      'expected a mapping, got a string',
    );
  });

  test('wrong types say what was expected and what came', () => {
    const err = configError(() =>
      parseHostConfig({
        ...one({ forceRaw: 'yes' }),
        downloadConcurrency: '20',
        file: { allowedRoots: '/x' },
      }),
    );
    expect(issuesOf(err)).toEqual([
      { path: 'caches[0].forceRaw', message: 'expected true or false, got a string' },
      { path: 'downloadConcurrency', message: 'expected a number, got a string' },
      { path: 'file.allowedRoots', message: 'expected a list, got a string' },
    ]);
  });

  test('file roots, CA file must be absolute; TLS versions are checked', () => {
    const err = configError(() =>
      parseHostConfig({
        ...one(),
        file: { allowedRoots: ['files'] },
        http: { caFile: 'ca.pem', minTlsVersion: 'TLSv1' },
      }),
    );
    expect(issuesOf(err).map((i) => i.path)).toEqual([
      'file.allowedRoots[0]',
      'http.caFile',
      'http.minTlsVersion',
    ]);
    expect(parseHostConfig({ ...one(), file: { allowedRoots: [] } }).file.allowedRoots).toEqual([]);
  });
});

describe('http.auth', () => {
  test('basic and bearer', () => {
    expect(
      parseHostConfig({
        ...one(),
        http: {
          auth: { type: 'basic', username: 'u', password: 'p', origins: ['https://images.example:443'] },
        },
      }).http.auth,
    ).toEqual({
      type: 'basic',
      username: 'u',
      password: 'p',
      origins: ['https://images.example'],
    });
    expect(
      parseHostConfig({
        ...one(),
        http: {
          auth: { type: 'bearer', token: 't0k', origins: ['http://a.example:8080', 'https://b.example'] },
        },
      }).http.auth,
    ).toEqual({
      type: 'bearer',
      token: 't0k',
      origins: ['http://a.example:8080', 'https://b.example'],
    });
  });

  test('credentials without the origins they may go to are refused, saying what to add', () => {
    for (const auth of [
      { type: 'bearer', token: 'tok-x1' },
      { type: 'basic', username: 'u', password: 'pw-x1', origins: [] },
    ]) {
      const err = configError(() => parseHostConfig({ ...one(), http: { auth } }));
      expect(issuesOf(err)[0]?.path).toBe('http.auth.origins');
      expect(everything(err)).not.toMatch(/tok-x1|pw-x1/);
    }
    const missing = configError(() => parseHostConfig(one({ auth: { type: 'bearer', token: 'tok-x2' } })));
    expect(issuesOf(missing)).toEqual([
      {
        path: 'caches[0].auth.origins',
        message:
          'is required: list the origins these credentials may be sent to (e.g. [https://images.example:443])',
      },
    ]);
  });

  test('an origin is scheme, host and port only', () => {
    for (const origin of [
      'https://h.example/path',
      'ftp://h.example',
      'https://u:p@h.example',
      'h.example',
      'https://h.example/',
    ]) {
      const err = configError(() =>
        parseHostConfig({ ...one(), http: { auth: { type: 'bearer', token: 't', origins: [origin] } } }),
      );
      expect(issuesOf(err)).toEqual([
        { path: 'http.auth.origins[0]', message: 'must be an origin: http(s)://HOST[:PORT], no path' },
      ]);
    }
  });

  test('a password of the wrong type is not echoed', () => {
    const err = configError(() =>
      parseHostConfig({
        ...one(),
        http: {
          auth: { type: 'basic', username: 'u', password: 987654321, origins: ['https://images.example'] },
        },
      }),
    );
    expect(issuesOf(err)).toEqual([
      { path: 'http.auth.password', message: 'expected a string, got an integer' },
    ]);
    expect(everything(err)).not.toContain('987654321');
  });

  test('secrets are not echoed, whatever the problem', () => {
    const secret = 'S3cr3t-Pa55word';
    const cases: unknown[] = [
      { ...one(), http: { auth: { type: 'basic', username: 'u', password: { nested: secret } } } },
      { ...one(), http: { auth: { type: 'basic', username: 'u', password: secret, extra: 1 } } },
      { ...one(), http: { auth: { type: 'oauth', token: secret } } },
      { ...one(), http: { auth: { type: 'bearer', token: secret, username: 'u' } } },
      { ...one(), http: { auth: { type: 'basic', username: 'u', password: secret } }, logLevel: secret },
      { ...one({ masterDir: secret }), http: { auth: { type: 'bearer', token: secret } } },
      { ...one({ cacheSize: secret }), http: { auth: { type: 'bearer', token: secret } } },
    ];
    for (const input of cases) {
      const err = configError(() => parseHostConfig(input));
      expect(everything(err)).not.toContain(secret);
    }
  });

  test('per cache, with secrets kept out of errors', () => {
    const c = parseHostConfig({
      caches: [
        {
          name: 'a',
          masterDir: '/a',
          auth: { type: 'bearer', token: 'per-cache', origins: ['https://images.example'] },
        },
        { name: 'b', masterDir: '/b' },
      ],
      http: {
        auth: { type: 'basic', username: 'u', password: 'host-wide', origins: ['https://images.example'] },
      },
    });
    expect(c.caches[0]?.auth).toEqual({
      type: 'bearer',
      token: 'per-cache',
      origins: ['https://images.example'],
    });
    expect(c.caches[1]?.auth).toBeUndefined();
    expect(c.http.auth).toEqual({
      type: 'basic',
      username: 'u',
      password: 'host-wide',
      origins: ['https://images.example'],
    });
    const err = configError(() =>
      parseHostConfig(
        one({
          auth: {
            type: 'bearer',
            token: 'Zecret-Tok3n',
            tokn: 'Zecret-Tok3n',
            origins: ['https://images.example'],
          },
          cacheTtl: 'Zecret-Tok3n',
        }),
      ),
    );
    expect(issuesOf(err).map((i) => i.message)).toEqual([
      '"***" is not a duration (use seconds or units such as 30s, 15m, 1h, 7d)',
      'unknown key (did you mean token?)',
    ]);
    expect(everything(err)).not.toContain('Zecret');
  });

  test('an unknown auth type lists the known ones', () => {
    const err = configError(() => parseHostConfig({ ...one(), http: { auth: { type: 'oauth' } } }));
    expect(issuesOf(err)).toEqual([{ path: 'http.auth.type', message: 'must be one of basic, bearer' }]);
  });
});

describe('redis', () => {
  test('the three shapes', () => {
    expect(parseHostConfig({ ...one(), redis: { url: 'redis://127.0.0.1:6379' } }).redis).toEqual({
      mode: 'standalone',
      url: 'redis://127.0.0.1:6379',
      prefix: '{imagecache}',
    });
    expect(
      parseHostConfig({
        ...one(),
        redis: { sentinels: [{ host: 's1' }, { host: 's2', port: 26380 }], name: 'mymaster', password: 'pw' },
      }).redis,
    ).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 's1', port: 6379 },
        { host: 's2', port: 26380 },
      ],
      name: 'mymaster',
      password: 'pw',
      prefix: '{imagecache}',
    });
    expect(
      parseHostConfig({ ...one(), redis: { cluster: [{ host: 'c1', port: 7000 }], prefix: '{ic}' } }).redis,
    ).toEqual({
      mode: 'cluster',
      cluster: [{ host: 'c1', port: 7000 }],
      prefix: '{ic}',
    });
  });

  test('shape errors', () => {
    expect(configError(() => parseHostConfig({ ...one(), redis: {} })).message).toContain(
      'redis: give exactly one of url, sentinels (with name) or cluster',
    );
    expect(
      configError(() => parseHostConfig({ ...one(), redis: { url: 'redis://h', cluster: [{ host: 'c' }] } }))
        .message,
    ).toContain('redis: give exactly one of');
    expect(
      configError(() => parseHostConfig({ ...one(), redis: { sentinels: [{ host: 's' }] } })).message,
    ).toContain('redis.name: is required with sentinels');
    expect(
      configError(() => parseHostConfig({ ...one(), redis: { cluster: [{ host: 'c' }], prefix: 'ic' } }))
        .message,
    ).toContain('redis.prefix: must contain a hash tag');
    expect(
      configError(() => parseHostConfig({ ...one(), redis: { cluster: [{ host: 'c', port: 70000 }] } }))
        .message,
    ).toContain('redis.cluster[0].port: must be at most 65535');
  });

  test('a redis URL with a password is never echoed', () => {
    for (const redis of [
      { url: 'redis://user:hunter2secret@redis.example:6379', prefix: 5 },
      { url: 'http://user:hunter2secret@redis.example:6379' },
      { url: 'redis://:hunter2secret@', extra: true },
      { url: 'redis://user:hunter2secret@redis.example:6379', cluster: [{ host: 'x' }] },
      { url: 'not a url hunter2secret' },
    ]) {
      const err = configError(() => parseHostConfig({ ...one({ cacheSize: redis.url }), redis }));
      expect(everything(err)).not.toContain('hunter2secret');
    }
    const err = configError(() =>
      parseHostConfig({ ...one(), redis: { url: 'http://user:hunter2secret@h' } }),
    );
    expect(issuesOf(err)).toEqual([{ path: 'redis.url', message: 'must be a redis:// or rediss:// URL' }]);
  });
});

test('HostConfigSchema works on its own', () => {
  const input: HostConfigInput = {
    host: 'conductor-1',
    caches: [{ name: 'x', masterDir: '/x', cacheSize: '1GiB' }],
  };
  const out = HostConfigSchema.parse(input);
  expect(out.host).toBe('conductor-1');
  expect(out.caches[0]?.cacheSize).toBe(GiB);
  expect(HostConfigSchema.safeParse({ caches: [] }).success).toBe(false);
  expect(configError(() => parseHostConfig({ ...one(), host: 'has space' })).message).toContain(
    'host: must be a host name',
  );
});
