import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import {
  REPO,
  hostSetup,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  type HostSetup,
  type WorkerProcess,
} from './harness';

/**
 * Every cache verb of the CLI through a host's worker (--redis) and in the CLI's own process (--config), on the
 * same folder: one handle, the same answers (the verbs no longer fork or cast).
 */
const prefix = uniquePrefix();
const HOST = 'node-remote';
let server: ImageServer;
let setup: HostSetup;
let worker: WorkerProcess;
const data = randomBytes(1 << 20);

beforeAll(async () => {
  server = await startImageServer();
  server.route('/disk.img', { body: data, lastModified: new Date(0) });
  setup = hostSetup({ host: HOST, redis: SHARED_REDIS, prefix });
  worker = await startWorker(setup.config);
}, 30_000);

afterAll(async () => {
  await worker.stop('SIGKILL');
  await server.close();
});

function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(`${REPO}/bin/imagecache`, args);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

const remote = ['--redis', SHARED_REDIS, '--redis-prefix', prefix, '--host', HOST];
const local = () => ['--config', setup.config];

describe('the CLI through Redis and in its own process', () => {
  it('fetch: the same result either way, one master behind both destinations', async () => {
    const href = server.url('/disk.img');
    const there = await cli([
      'fetch',
      href,
      setup.dest('remote'),
      ...remote,
      '--cache',
      'instance',
      '--json',
    ]);
    expect(there.code).toBe(0);
    const here = await cli(['fetch', href, setup.dest('local'), ...local(), '--cache', 'instance', '--json']);
    expect(here.code).toBe(0);
    const [r, l] = [JSON.parse(there.out), JSON.parse(here.out)];
    expect([r.cacheHit, l.cacheHit]).toEqual([false, true]);
    expect(Object.keys(l).sort()).toEqual(Object.keys(r).sort());
    expect(l.masterPath).toBe(r.masterPath);
    expect(fs.statSync(setup.dest('local')).ino).toBe(fs.statSync(setup.dest('remote')).ino);
    expect(fs.readFileSync(setup.dest('local')).equals(data)).toBe(true);
  }, 30_000);

  it('ls: the same listing, as JSON (dates as ISO strings) and as text', async () => {
    const there = await cli(['ls', ...remote, '--cache', 'instance', '--json']);
    const here = await cli(['ls', ...local(), '--cache', 'instance', '--json']);
    expect([there.code, here.code]).toEqual([0, 0]);
    expect(JSON.parse(there.out)).toEqual(JSON.parse(here.out));
    const listed = JSON.parse(here.out).caches[0];
    expect(listed).toMatchObject({ cache: 'instance', masterDir: setup.masterDir('instance') });
    expect(listed.masters[0]).toMatchObject({ links: 3, href: server.url('/disk.img') });
    expect(listed.masters[0].lastUsed).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    const text = [await cli(['ls', ...remote, '--cache', 'instance']), await cli(['ls', ...local()])];
    expect(text[0]!.out).toBe(text[1]!.out);
    expect(text[0]!.out).toContain('instance (');
  }, 30_000);

  it('clean and clean-caches: the engine result either way', async () => {
    const there = await cli(['clean', ...remote, '--cache', 'instance', '--json']);
    const here = await cli(['clean', ...local(), '--cache', 'instance', '--json']);
    expect([there.code, here.code]).toEqual([0, 0]);
    const [r, l] = [JSON.parse(there.out), JSON.parse(here.out)];
    // The master is in use (two destinations): nothing is removed, either way.
    for (const result of [r, l]) expect(result).toMatchObject({ cache: 'instance', removed: [], freed: 0 });
    expect(r.totalSize).toBe(l.totalSize);

    const href = server.url('/disk.img');
    const rooms = [
      await cli(['clean-caches', setup.root, href, ...remote, '--json']),
      await cli(['clean-caches', setup.root, href, ...local(), '--json']),
    ];
    for (const room of rooms) {
      expect(room.code).toBe(0);
      expect(JSON.parse(room.out)).toMatchObject({
        directory: setup.root,
        required: data.length,
        cleaned: [],
      });
    }
  }, 30_000);

  it('refuses --redis without --cache or --host before anything is queued (exit 2)', async () => {
    for (const args of [
      ['ls', ...remote],
      ['clean', '--redis', SHARED_REDIS, '--cache', 'instance'],
      ['fetch', server.url('/disk.img'), setup.dest('x'), ...remote],
    ]) {
      const r = await cli([...args, '--json']);
      expect(r.code).toBe(2);
      expect(JSON.parse(r.out).error).toMatchObject({ code: 'USAGE_ERROR' });
      expect(JSON.parse(r.out).error.message).toMatch(/--redis needs --(cache|host)/);
    }
    expect(fs.existsSync(setup.dest('x'))).toBe(false);
  }, 30_000);
});
