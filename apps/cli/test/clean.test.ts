import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { cli } from './run-cli';

let server: ImageServer;
beforeAll(async () => {
  server = await startImageServer();
});
afterAll(() => server.close());

function setUp() {
  const root = tmpDir('imagecache-cli-');
  const caches = { iso: path.join(root, 'iso'), instance: path.join(root, 'instance') };
  for (const dir of Object.values(caches)) fs.mkdirSync(dir);
  const config = path.join(root, 'imagecache.yaml');
  fs.writeFileSync(
    config,
    [
      'caches:',
      `  - { name: iso, masterDir: ${caches.iso}, cacheSize: 1GiB }`,
      `  - { name: instance, masterDir: ${caches.instance}, cacheSize: 1GiB }`,
      'logLevel: warn',
    ].join('\n'),
  );
  return { root, caches, config };
}

describe('imagecache clean, ls and clean-caches', () => {
  it('lists masters and frees an amount, oldest first, never one in use nor a foreign file', async () => {
    const { root, caches, config } = setUp();
    const id = {
      old: '0c9a4a0e-1f1b-5c55-8d0e-000000000001',
      new: '0c9a4a0e-1f1b-5c55-8d0e-000000000002',
      used: '0c9a4a0e-1f1b-5c55-8d0e-000000000003',
    };
    for (const [name, age] of [
      [id.old, 300],
      [id.new, 100],
      [id.used, 500],
      ['snponly.efi', 900], // a PXE loader living in the folder (metal3-io/ironic-image#333)
    ] as const) {
      const f = path.join(caches.instance, name);
      fs.writeFileSync(f, Buffer.alloc(4096, 1));
      fs.utimesSync(f, new Date(Date.now() - age * 1000), new Date(Date.now() - age * 1000));
    }
    fs.linkSync(path.join(caches.instance, id.used), path.join(root, 'used-dest'));

    const ls = await cli(['ls', '--config', config, '--cache', 'instance', '--json']);
    expect(ls.code).toBe(0);
    const listed = ls.json().caches[0].masters as { name: string; links: number; foreign?: boolean }[];
    expect(listed.map((m) => `${m.name}:${m.links}${m.foreign ? ':foreign' : ''}`).sort()).toEqual(
      [`${id.new}:1`, `${id.old}:1`, `${id.used}:2`, 'snponly.efi:1:foreign'].sort(),
    );
    const text = await cli(['ls', '--config', config, '--cache', 'instance']);
    expect(text.stdout).toContain('3 masters, 1 foreign');
    expect(text.stdout).toMatch(
      /snponly\.efi .*foreign: not a master, never evicted, counts towards the folder's size/,
    );

    const clean = await cli([
      'clean',
      '--config',
      config,
      '--cache',
      'instance',
      '--amount',
      '6000',
      '--json',
    ]);
    expect(clean.code).toBe(0);
    expect(clean.json()).toMatchObject({ cache: 'instance', freed: 8192, stillRequired: 0 });
    expect(
      fs
        .readdirSync(caches.instance)
        .filter((f) => !f.startsWith('.'))
        .sort(),
    ).toEqual(['snponly.efi', id.used].sort());
    // Nothing else is left to free: the loader is never taken for a master.
    const again = await cli([
      'clean',
      '--config',
      config,
      '--cache',
      'instance',
      '--amount',
      '4096',
      '--json',
    ]);
    expect(again.json()).toMatchObject({ freed: 0, stillRequired: 4096 });
    expect(fs.existsSync(path.join(caches.instance, 'snponly.efi'))).toBe(true);
  });

  it('fetch refuses an image larger than the cache: IMAGE_TOO_LARGE, exit 45, nothing written', async () => {
    const { root, caches, config } = setUp();
    server.route('/too-large.img', { status: 200, body: '', contentLength: 2 ** 31 });
    const dest = path.join(root, 'dest.img');
    const r = await cli([
      'fetch',
      server.url('/too-large.img'),
      dest,
      '--config',
      config,
      '--cache',
      'instance',
      '--json',
    ]);
    expect(r.code).toBe(45);
    const e = r.json().error;
    expect(e.code).toBe('IMAGE_TOO_LARGE');
    expect(e.details).toMatchObject({ measured: 'declared', size: 2 ** 31, cacheSize: 2 ** 30 });
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.readdirSync(caches.instance).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('clean-caches fails with InsufficientDiskSpace and its figures when room cannot be made', async () => {
    const { root, config } = setUp();
    server.route('/huge.img', { status: 200, body: '', contentLength: 2 ** 52 });
    const r = await cli(['clean-caches', root, server.url('/huge.img'), '--config', config, '--json']);
    expect(r.code).toBe(50);
    const e = r.json().error;
    expect(e.code).toBe('INSUFFICIENT_DISK_SPACE');
    expect(e.details).toMatchObject({ path: root, required: 2 ** 52 });
  });

  it('clean-caches reports the space when there is room', async () => {
    const { root, config } = setUp();
    server.route('/small.img', { body: 'x'.repeat(100), lastModified: new Date(0) });
    const r = await cli(['clean-caches', root, server.url('/small.img'), '--config', config, '--json']);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ required: 100, cleaned: [] });
  });

  it('refuses a configuration with a bad key, naming it', async () => {
    const { root } = setUp();
    const bad = path.join(root, 'bad.yaml');
    fs.writeFileSync(bad, `caches:\n  - { name: x, masterDir: ${root}/m, cacheSize: abc }\n`);
    const r = await cli(['ls', '--config', bad, '--json']);
    expect(r.code).toBe(3);
    expect(r.json().error.message).toContain('caches[0].cacheSize');
  });
});
