import { DEFAULTS, PRIORITY_PRESETS } from '@imagecache/config';

const GiB = 2 ** 30;

test('DEFAULTS carries every default of spec.md §10', () => {
  expect(DEFAULTS).toMatchObject({
    cacheSize: 20 * GiB,
    cacheTtl: 7 * 24 * 3600,
    forceRaw: true,
    validate: true,
    downloadConcurrency: 20,
    growthFactor: 2.0,
    permittedFormats: ['raw', 'gpt', 'qcow2', 'iso'],
    httpInactivityTimeout: 60,
    httpConnectTimeout: 30,
    verifyTls: true,
    minTlsVersion: 'TLSv1.2',
    allowMd5: true,
    zstd: true,
    directIo: true,
    sweepIntervalSeconds: 3600,
    qemuImgMemoryCap: 2 * GiB,
    fileRoots: ['/var/lib/imagecache/files'],
    priorities: { iso: 75, instance: 50, tftp: 25 },
    priority: 50,
    masterDir: '/var/lib/imagecache/master_images',
    createDestDirs: false,
    logLevel: 'info',
    redisPrefix: '{imagecache}',
  });
  expect(DEFAULTS.priorities).toBe(PRIORITY_PRESETS);
});

test('DEFAULTS is frozen, deeply', () => {
  expect(Object.isFrozen(DEFAULTS)).toBe(true);
  expect(Object.isFrozen(DEFAULTS.priorities)).toBe(true);
  expect(Object.isFrozen(DEFAULTS.permittedFormats)).toBe(true);
  expect(Object.isFrozen(DEFAULTS.fileRoots)).toBe(true);
  expect(() => {
    (DEFAULTS as { cacheSize: number }).cacheSize = 1;
  }).toThrow(TypeError);
});
