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
  it('lists masters and frees an amount, oldest first, never one in use', async () => {
    const { root, caches, config } = setUp();
    for (const [name, age] of [
      ['old', 300],
      ['new', 100],
      ['used', 500],
    ] as const) {
      const f = path.join(caches.instance, name);
      fs.writeFileSync(f, Buffer.alloc(1000));
      fs.utimesSync(f, new Date(Date.now() - age * 1000), new Date(Date.now() - age * 1000));
    }
    fs.linkSync(path.join(caches.instance, 'used'), path.join(root, 'used-dest'));

    const ls = await cli(['ls', '--config', config, '--cache', 'instance', '--json']);
    expect(ls.code).toBe(0);
    expect(
      ls
        .json()
        .caches[0].masters.map((m: { name: string; links: number }) => `${m.name}:${m.links}`)
        .sort(),
    ).toEqual(['new:1', 'old:1', 'used:2']);

    const clean = await cli([
      'clean',
      '--config',
      config,
      '--cache',
      'instance',
      '--amount',
      '1500',
      '--json',
    ]);
    expect(clean.code).toBe(0);
    expect(clean.json()).toMatchObject({ cache: 'instance', freed: 2000, stillRequired: 0 });
    expect(fs.readdirSync(caches.instance).filter((f) => !f.startsWith('.'))).toEqual(['used']);
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
