import * as fs from 'node:fs';
import * as path from 'node:path';
import { configForSingleCache, loadConfig, readConfigFile } from '@imagecache/config';
import { tmpDir } from '@imagecache/testing';
import { configError, everything, issuesOf } from './helpers';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
let dir: string;
beforeEach(() => {
  dir = tmpDir('imagecache-config-');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

const YAML_EXAMPLE = `# a conductor
host: conductor-1
caches:
  - name: instance
    masterDir: /var/lib/imagecache/master_images
    cacheSize: 20GiB
    cacheTtl: 7d
    priority: 50
    forceRaw: true
    validate: true
  - name: tftp
    masterDir: /tftpboot/master_images
    cacheSize: 500MiB
    cacheTtl: 1h
    validate: false
    permittedFormats: [raw]
downloadConcurrency: 10
downloadSlotsDir: /run/imagecache/slots
growthFactor: 1.5
permittedFormats: [raw, gpt, qcow2, iso]
zstd: false
directIo: false
allowMd5: false
sweepInterval: 15m
createDestDirs: true
file: { allowedRoots: [/srv/images] }
http:
  inactivityTimeout: 90s
  connectTimeout: 10
  minRate: 2KiB
  minRateWindow: 2m
  blockedNetworks: [10.0.0.0/8, 'fd00::/8', 192.0.2.7]
  verifyTls: true
  caFile: /etc/ssl/ca.pem
  minTlsVersion: TLSv1.3
  auth: { type: basic, username: glance, password: s3cret, origins: ['https://images.example:443'] }
qemuImg: { memoryCap: 1GiB }
redis: { url: 'redis://127.0.0.1:6379', prefix: '{imagecache}' }
logLevel: debug
`;

const NO_ENV = {};

describe('files', () => {
  test('YAML', () => {
    const c = loadConfig({ file: write('host.yaml', YAML_EXAMPLE), env: NO_ENV });
    expect(c).toEqual({
      host: 'conductor-1',
      caches: [
        {
          name: 'instance',
          masterDir: '/var/lib/imagecache/master_images',
          cacheSize: 20 * GiB,
          cacheTtl: 604800,
          priority: 50,
          forceRaw: true,
          validate: true,
          permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
        },
        {
          name: 'tftp',
          masterDir: '/tftpboot/master_images',
          cacheSize: 500 * MiB,
          cacheTtl: 3600,
          priority: 25,
          forceRaw: true,
          validate: false,
          permittedFormats: ['raw'],
        },
      ],
      downloadConcurrency: 10,
      downloadSlotsDir: '/run/imagecache/slots',
      growthFactor: 1.5,
      permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
      zstd: false,
      directIo: false,
      allowMd5: false,
      sweepInterval: 900,
      createDestDirs: true,
      file: { allowedRoots: ['/srv/images'], allowHardLinks: false },
      destinations: { unrestricted: false },
      http: {
        inactivityTimeout: 90,
        connectTimeout: 10,
        minRate: 2048,
        minRateWindow: 120,
        blockedNetworks: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'],
        allowHttpsToHttpRedirect: false,
        verifyTls: true,
        caFile: '/etc/ssl/ca.pem',
        minTlsVersion: 'TLSv1.3',
        auth: { type: 'basic', username: 'glance', password: 's3cret', origins: ['https://images.example'] },
      },
      qemuImg: { memoryCap: GiB },
      imageService: { auth: { type: 'none' }, interface: 'public' },
      oci: { platform: {}, registries: [] },
      peers: { enabled: false, bind: '127.0.0.1', uploadConcurrency: 4, tokenTtl: 60 },
      redis: { mode: 'standalone', url: 'redis://127.0.0.1:6379', prefix: '{imagecache}' },
      logLevel: 'debug',
    });
    expect(loadConfig({ file: write('host.yml', YAML_EXAMPLE), env: NO_ENV })).toEqual(c);
  });

  test('JSON', () => {
    const file = write(
      'host.json',
      JSON.stringify({
        host: 'h',
        caches: [{ name: 'iso', masterDir: '/iso', cacheSize: 1073741824, cacheTtl: '2d' }],
      }),
    );
    const c = loadConfig({ file, env: NO_ENV });
    expect(c.host).toBe('h');
    expect(c.caches).toEqual([
      expect.objectContaining({ name: 'iso', cacheSize: GiB, cacheTtl: 172800, priority: 75 }),
    ]);
  });

  test('no extension: JSON first, else YAML', () => {
    expect(readConfigFile(write('a.conf', '{"caches": []}'))).toMatchObject({
      format: 'json',
      data: { caches: [] },
    });
    expect(readConfigFile(write('b.conf', 'caches: []\n'))).toMatchObject({
      format: 'yaml',
      data: { caches: [] },
    });
    expect(readConfigFile(write('c', '\uFEFF{"caches": []}'))).toMatchObject({ format: 'json' });
  });

  test('a missing file is a ConfigError naming it', () => {
    const file = path.join(dir, 'nope.yaml');
    const err = configError(() => loadConfig({ file, env: NO_ENV }));
    expect(err.message).toBe(`configuration file ${file} does not exist`);
    expect(err.details.file).toBe(file);
  });

  test('a folder, an unreadable file', () => {
    expect(configError(() => loadConfig({ file: dir, env: NO_ENV })).message).toContain('is a folder');
    const file = write('secret.yaml', 'caches: []');
    fs.chmodSync(file, 0);
    let readable = true;
    try {
      fs.accessSync(file, fs.constants.R_OK); // root reads everything
    } catch {
      readable = false;
    }
    if (!readable)
      expect(configError(() => loadConfig({ file, env: NO_ENV })).message).toContain('not readable');
  });

  test('a YAML syntax error names the file, the line and the column', () => {
    const file = write('bad.yaml', 'host: h\ncaches:\n  - name: a\n    masterDir: [/a\nlogLevel: info\n');
    const err = configError(() => loadConfig({ file, env: NO_ENV }));
    expect(err.message).toMatch(new RegExp(`^cannot parse ${file} \\(YAML\\) at line \\d+, column \\d+: `));
    expect(err.details).toMatchObject({ file, line: expect.any(Number), column: expect.any(Number) });
    const dup = write('dup.yaml', 'host: a\nhost: b\n');
    expect(configError(() => loadConfig({ file: dup, env: NO_ENV })).message).toMatch(
      /at line 2, column 1: .*unique/i,
    );
  });

  test('a JSON syntax error names the file, the line and the column, and quotes nothing', () => {
    const file = write(
      'bad.json',
      '{\n  "caches": [],\n  "http": { "auth": { "type": "bearer", "token": "tok-ABCDEFGH" "x": 1 } }\n}\n',
    );
    const err = configError(() => loadConfig({ file, env: NO_ENV }));
    expect(err.message).toMatch(new RegExp(`^cannot parse ${file} \\(JSON\\) at line 3, column \\d+: `));
    expect(everything(err)).not.toContain('tok-ABCDEFGH');

    const noPos = write('nopos.json', '{\n  "password": "hunter2-secret",\n  "a": }\n');
    const err2 = configError(() => loadConfig({ file: noPos, env: NO_ENV }));
    expect(err2.message).toBe(`cannot parse ${noPos} (JSON) at line 3, column 8: Unexpected token '}'`);
    expect(everything(err2)).not.toContain('hunter2');

    const truncated = write('truncated.json', '{"caches": [');
    expect(configError(() => loadConfig({ file: truncated, env: NO_ENV })).message).toContain(
      'at line 1, column 13',
    );
  });

  test('an empty file, a list, a scalar are refused', () => {
    expect(
      configError(() => loadConfig({ file: write('e.yaml', '# nothing\n'), env: NO_ENV })).message,
    ).toContain('is empty');
    expect(configError(() => loadConfig({ file: write('l.yaml', '- a\n'), env: NO_ENV })).message).toContain(
      'must hold a mapping of keys (such as caches:), not a list',
    );
    expect(configError(() => loadConfig({ file: write('s.json', '42'), env: NO_ENV })).message).toContain(
      'not a number',
    );
  });

  test('validation errors name the file and the line', () => {
    const file = write(
      'v.yaml',
      'caches:\n  - name: a\n    masterDir: /a\n    cacheSize: abc\n    colour: blue\n',
    );
    const err = configError(() => loadConfig({ file, env: NO_ENV }));
    expect(err.message).toBe(
      `invalid configuration in ${file}:\n` +
        '  caches[0].cacheSize: "abc" is not a size (use bytes or units such as 500MiB, 20GiB) [line 4]\n' +
        '  caches[0].colour: unknown key [line 5]',
    );
    expect(issuesOf(err)[0]).toEqual({ path: 'caches[0].cacheSize', message: expect.any(String), line: 4 });
    expect(err.details.file).toBe(file);

    const json = write('v.json', '{\n  "caches": [\n    {"name": "a", "masterDir": "rel"}\n  ]\n}\n');
    expect(issuesOf(configError(() => loadConfig({ file: json, env: NO_ENV })))[0]).toMatchObject({
      path: 'caches[0].masterDir',
      line: 3,
    });
  });

  test('the YAML 1.2 core schema: yes/no/on are strings, not booleans', () => {
    const file = write('y.yaml', 'caches: [{name: a, masterDir: /a, forceRaw: yes}]\n');
    expect(issuesOf(configError(() => loadConfig({ file, env: NO_ENV })))).toEqual([
      { path: 'caches[0].forceRaw', message: 'expected true or false, got a string', line: 1 },
    ]);
  });
});

describe('environment', () => {
  const base = () =>
    write(
      'base.yaml',
      'caches:\n  - {name: instance, masterDir: /m/instance}\n  - {name: my-tftp, masterDir: /m/tftp}\nredis: {url: "redis://r1:6379", prefix: "{ic}"}\n',
    );

  test('every variable applies', () => {
    const c = loadConfig({
      file: base(),
      env: {
        IMAGECACHE_HOST: 'conductor-9',
        IMAGECACHE_REDIS_URL: 'rediss://r2:6380',
        REDIS_URL: 'redis://ignored:1',
        IMAGECACHE_DOWNLOAD_CONCURRENCY: '5',
        IMAGECACHE_LOG_LEVEL: 'warn',
        IMAGECACHE_FILE_ROOTS: '/srv/a:/srv/b/',
        IMAGECACHE_SWEEP_INTERVAL: '2h',
        IMAGECACHE_HTTP_CA_FILE: '/etc/ca.pem',
        IMAGECACHE_CACHE_INSTANCE_SIZE: '50GiB',
        IMAGECACHE_CACHE_MY_TFTP_TTL: '1d',
        IMAGECACHE_CACHE_MY_TFTP_SIZE: '',
        PATH: '/usr/bin',
      },
    });
    expect(c.host).toBe('conductor-9');
    expect(c.redis).toEqual({ mode: 'standalone', url: 'rediss://r2:6380', prefix: '{ic}' });
    expect(c.downloadConcurrency).toBe(5);
    expect(c.logLevel).toBe('warn');
    expect(c.file.allowedRoots).toEqual(['/srv/a', '/srv/b']);
    expect(c.sweepInterval).toBe(7200);
    expect(c.http.caFile).toBe('/etc/ca.pem');
    expect(c.caches[0]?.cacheSize).toBe(50 * GiB);
    expect(c.caches[1]?.cacheTtl).toBe(86400);
    expect(c.caches[1]?.cacheSize).toBe(20 * GiB); // empty = unset
  });

  test('REDIS_URL is the fallback; it replaces a sentinel shape; IMAGECACHE_REDIS_PREFIX', () => {
    const file = write(
      's.yaml',
      'caches: [{name: a, masterDir: /a}]\nredis: {sentinels: [{host: s}], name: m}\n',
    );
    expect(loadConfig({ file, env: { REDIS_URL: 'redis://fallback:6379' } }).redis).toEqual({
      mode: 'standalone',
      url: 'redis://fallback:6379',
      prefix: '{imagecache}',
    });
    expect(
      loadConfig({ file, env: { REDIS_URL: 'redis://f', IMAGECACHE_REDIS_PREFIX: '{x}' } }).redis?.prefix,
    ).toBe('{x}');
    const none = write('n.yaml', 'caches: [{name: a, masterDir: /a}]\n');
    expect(loadConfig({ file: none, env: { IMAGECACHE_REDIS_PREFIX: '{x}' } }).redis).toBeUndefined();
  });

  test('bad values are reported with the variable they came from, never quoting a Redis URL', () => {
    const err = configError(() =>
      loadConfig({
        file: base(),
        env: {
          IMAGECACHE_DOWNLOAD_CONCURRENCY: 'many',
          IMAGECACHE_CACHE_INSTANCE_SIZE: 'huge',
          IMAGECACHE_FILE_ROOTS: 'relative:/ok',
          REDIS_URL: 'http://admin:pa55w0rd-xyz@redis:6379',
        },
      }),
    );
    expect(issuesOf(err)).toEqual(
      expect.arrayContaining([
        {
          path: 'downloadConcurrency',
          message: 'expected a number, got a string',
          env: 'IMAGECACHE_DOWNLOAD_CONCURRENCY',
        },
        {
          path: 'caches[0].cacheSize',
          message: '"huge" is not a size (use bytes or units such as 500MiB, 20GiB)',
          env: 'IMAGECACHE_CACHE_INSTANCE_SIZE',
        },
        {
          path: 'file.allowedRoots[0]',
          message: '"relative" is not an absolute path',
          env: 'IMAGECACHE_FILE_ROOTS',
        },
        { path: 'redis.url', message: 'must be a redis:// or rediss:// URL', env: 'REDIS_URL' },
      ]),
    );
    expect(err.message).toContain(
      'caches[0].cacheSize: "huge" is not a size (use bytes or units such as 500MiB, 20GiB) (from IMAGECACHE_CACHE_INSTANCE_SIZE)',
    );
    expect(everything(err)).not.toContain('pa55w0rd');
  });

  test('a per-cache variable naming no cache is refused', () => {
    const err = configError(() => loadConfig({ file: base(), env: { IMAGECACHE_CACHE_ISO_SIZE: '1GiB' } }));
    expect(err.message).toContain(
      'IMAGECACHE_CACHE_ISO_SIZE names no configured cache (known: INSTANCE, MY_TFTP)',
    );
  });

  test('IMAGECACHE_CONFIG names the file when none is given', () => {
    const file = base();
    expect(loadConfig({ env: { IMAGECACHE_CONFIG: file } }).caches).toHaveLength(2);
    expect(configError(() => loadConfig({ env: {} })).message).toBe(
      'invalid configuration: caches: is required',
    );
  });

  test('process.env is read by default and never modified', () => {
    const before = { ...process.env };
    const file = base();
    loadConfig({ file, env: { IMAGECACHE_HOST: 'x' } });
    const c = loadConfig({ file });
    expect(typeof c.host).toBe('string');
    expect(process.env).toEqual(before);
  });
});

describe('overrides', () => {
  test('win over the file and the environment; objects merge key by key', () => {
    const file = write(
      'o.yaml',
      'caches: [{name: a, masterDir: /a}]\nhttp: {connectTimeout: 5, verifyTls: true}\nredis: {url: "redis://r", prefix: "{p}"}\n',
    );
    const c = loadConfig({
      file,
      env: { IMAGECACHE_LOG_LEVEL: 'warn' },
      overrides: { logLevel: 'error', http: { verifyTls: false }, redis: { cluster: [{ host: 'c' }] } },
    });
    expect(c.logLevel).toBe('error');
    expect(c.http).toMatchObject({ connectTimeout: 5, verifyTls: false });
    expect(c.redis).toEqual({ mode: 'cluster', cluster: [{ host: 'c', port: 6379 }], prefix: '{p}' });
  });

  test('build a configuration without a file', () => {
    const c = loadConfig({
      env: {},
      overrides: { caches: [{ name: 'x', masterDir: '/x', cacheSize: '1GiB' }] },
    });
    expect(c.caches[0]?.cacheSize).toBe(GiB);
    const err = configError(() =>
      loadConfig({ env: {}, overrides: { caches: [{ name: 'x', masterDir: '/x', cacheSize: 'abc' }] } }),
    );
    expect(issuesOf(err)).toEqual([
      { path: 'caches[0].cacheSize', message: expect.stringContaining('"abc" is not a size') },
    ]);
  });
});

describe('configForSingleCache', () => {
  test('one cache named default, with the default folder', () => {
    const c = configForSingleCache({ env: {} });
    expect(c.caches).toEqual([
      {
        name: 'default',
        masterDir: '/var/lib/imagecache/master_images',
        cacheSize: 20 * GiB,
        cacheTtl: 604800,
        priority: 50,
        forceRaw: true,
        validate: true,
        permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
      },
    ]);
    expect(c.downloadConcurrency).toBe(20);
  });

  test('$IMAGECACHE_MASTER_DIR, relative folders, options', () => {
    expect(configForSingleCache({ env: { IMAGECACHE_MASTER_DIR: '/srv/m' } }).caches[0]?.masterDir).toBe(
      '/srv/m',
    );
    expect(
      configForSingleCache({ masterDir: '/opt/m', env: { IMAGECACHE_MASTER_DIR: '/srv/m' } }).caches[0]
        ?.masterDir,
    ).toBe('/opt/m');
    expect(configForSingleCache({ masterDir: 'rel/m', env: {} }).caches[0]?.masterDir).toBe(
      path.resolve('rel/m'),
    );
    const c = configForSingleCache({
      masterDir: dir,
      cacheSize: '1GiB',
      cacheTtl: 60,
      forceRaw: false,
      validate: false,
      env: {},
    });
    expect(c.caches[0]).toMatchObject({
      masterDir: dir,
      cacheSize: GiB,
      cacheTtl: 60,
      forceRaw: false,
      validate: false,
    });
  });

  test('options win over IMAGECACHE_CACHE_DEFAULT_*, which win over defaults; host-wide env applies', () => {
    const env = {
      IMAGECACHE_CACHE_DEFAULT_SIZE: '5GiB',
      IMAGECACHE_CACHE_DEFAULT_TTL: '1h',
      IMAGECACHE_FILE_ROOTS: '/f',
    };
    const c = configForSingleCache({ masterDir: '/m', cacheTtl: '2h', env });
    expect(c.caches[0]).toMatchObject({ cacheSize: 5 * GiB, cacheTtl: 7200 });
    expect(c.file.allowedRoots).toEqual(['/f']);
    expect(
      configForSingleCache({ masterDir: '/m', env, overrides: { file: { allowedRoots: ['/g'] } } }).file
        .allowedRoots,
    ).toEqual(['/g']);
  });

  test('a bad size names caches[0].cacheSize', () => {
    const err = configError(() => configForSingleCache({ masterDir: '/m', cacheSize: 'abc', env: {} }));
    expect(err.message).toBe(
      'invalid configuration: caches[0].cacheSize: "abc" is not a size (use bytes or units such as 500MiB, 20GiB)',
    );
  });
});
