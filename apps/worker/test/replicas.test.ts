import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageChecksumError } from '@imagecache/errors';
import { ImageCacheClient, queueNames } from '@imagecache/queue';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import {
  REPO,
  clientProcess,
  hostSetup,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  whoHasOpen,
  type HostSetup,
  type WorkerProcess,
} from './harness';

/** Two worker replicas of one host, real processes, a real Redis; conductors in processes of their own. */
const prefix = uniquePrefix();
const HOST = 'node-a';
let server: ImageServer;
let setup: HostSetup;
let replicas: WorkerProcess[];
let client: ImageCacheClient;

beforeAll(async () => {
  server = await startImageServer();
  setup = hostSetup({ host: HOST, redis: SHARED_REDIS, prefix });
  replicas = await Promise.all([startWorker(setup.config), startWorker(setup.config)]);
  client = new ImageCacheClient({
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    pollIntervalMs: 500,
  });
}, 30_000);

afterAll(async () => {
  await client.close();
  await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
  await server.close();
});

const workLeft = () => fs.readdirSync(path.join(setup.masterDir('instance'), '.imagecache-work'));

describe('worker replicas', () => {
  it('downloads once for 10 concurrent fetches from 3 client processes, every destination one inode', async () => {
    const data = randomBytes(8 << 20);
    server.route('/shared.img', { body: data, lastModified: new Date(0), delayMs: 500 });
    const common = {
      redis: SHARED_REDIS,
      prefix,
      host: HOST,
      cache: 'instance',
      href: server.url('/shared.img'),
    };
    const names = Array.from({ length: 10 }, (_, i) => setup.dest(`shared-${i}`));
    const runs = await Promise.all([
      clientProcess({ ...common, dests: names.slice(0, 4) }),
      clientProcess({ ...common, dests: names.slice(4, 7) }),
      clientProcess({ ...common, dests: names.slice(7) }),
    ]);
    const outcomes = runs.flatMap((r) => r.results);
    expect(outcomes.filter((o) => o.error)).toEqual([]);
    expect(server.count('GET', '/shared.img')).toBe(1);
    expect(outcomes.filter((o) => o.ok!.cacheHit === false)).toHaveLength(1);
    const inodes = new Set(names.map((n) => fs.statSync(n).ino));
    expect(inodes.size).toBe(1);
    expect(fs.readFileSync(names[9]!).equals(data)).toBe(true);
  }, 30_000);

  it('serves the CLI with --redis, progress fed by the job', async () => {
    const data = randomBytes(4 << 20);
    server.route('/cli.img', { body: data, lastModified: new Date(0), delayMs: 400 });
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(path.join(REPO, 'bin/imagecache'), [
        'fetch',
        server.url('/cli.img'),
        setup.dest('cli'),
        '--redis',
        SHARED_REDIS,
        '--redis-prefix',
        prefix,
        '--host',
        HOST,
        '--cache',
        'instance',
        '--json',
      ]);
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (code) => resolve({ code, out, err }));
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      cacheHit: false,
      destPath: setup.dest('cli'),
      size: data.length,
    });
    expect(r.err).toMatch(/^fetch: (resolve|download)/m);
    expect(fs.readFileSync(setup.dest('cli')).equals(data)).toBe(true);

    const ls = await client.list({ host: HOST, cache: 'instance' });
    const listed = (ls.masters as { path: string; links: number }[]).find(
      (m) => fs.statSync(m.path).ino === fs.statSync(setup.dest('cli')).ino,
    );
    expect(listed?.links).toBe(2);
  }, 20_000);

  it('reports a checksum mismatch as the engine does, after one attempt', async () => {
    server.route('/sum.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
    const err = await client
      .fetchImage({
        host: HOST,
        cache: 'instance',
        href: server.url('/sum.img'),
        dest: setup.dest('sum'),
        expectedChecksum: 'sha256:' + 'ab'.repeat(32),
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(err.code).toBe('IMAGE_CHECKSUM_ERROR');
    expect(err.message).toContain('/sum.img');
    expect(server.count('GET', '/sum.img')).toBe(1);
    expect(fs.existsSync(setup.dest('sum'))).toBe(false);
  }, 20_000);

  it('never shows credentials in job data', async () => {
    const body = randomBytes(1000);
    server.route('/private.img', { body, lastModified: new Date(0) });
    server.route('/private.img.sha256', {
      body: `${createHash('sha256').update(body).digest('hex')}  private.img\n`,
    });
    const href = `http://alice:s3cr3t-pw@127.0.0.1:${server.port}/private.img`;
    const { jobId } = await client.enqueueFetch({
      host: HOST,
      cache: 'instance',
      href,
      dest: setup.dest('private'),
      auth: { type: 'bearer', token: 'tok-123456' },
      expectedChecksum: `http://carol:ck-s3cret@127.0.0.1:${server.port}/private.img.sha256`,
    });
    await client.waitFor(jobId);
    const view = await client.getJob(jobId);
    expect(view?.state).toBe('completed');
    const shown = JSON.stringify(view);
    expect(shown).not.toContain('ck-s3cret');
    expect(shown).not.toContain('s3cr3t-pw');
    expect(shown).not.toContain('tok-123456');
    const raw = JSON.stringify(await client['queue'](queueNames.fetch(HOST, 'instance')).getJob(jobId));
    expect(raw).not.toContain('s3cr3t-pw');
    expect(raw).not.toContain('ck-s3cret');
    expect(raw).not.toContain('tok-123456');
    expect(
      server.requests.find((r) => r.path === '/private.img' && r.method === 'GET')?.headers.authorization,
    ).toBe('Bearer tok-123456');
  }, 20_000);

  it('finishes a download after kill -9 of the replica doing it, continuing it with Range', async () => {
    const data = randomBytes(12 << 20);
    server.route('/killed.img', {
      body: data,
      lastModified: new Date(0),
      etag: '"k1"',
      ranges: true,
      stallAt: 9 << 20,
    });
    const fetching = clientProcess({
      redis: SHARED_REDIS,
      prefix,
      host: HOST,
      cache: 'instance',
      href: server.url('/killed.img'),
      dests: [setup.dest('killed')],
    });
    let victim: number | undefined;
    for (let i = 0; i < 200 && !victim; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const work = workLeft();
      const image = work.length
        ? path.join(setup.masterDir('instance'), '.imagecache-work', work[0]!, 'image')
        : '';
      if (image && (fs.statSync(image, { throwIfNoEntry: false })?.size ?? 0) >= 8 << 20) {
        victim = whoHasOpen(
          replicas.map((r) => r.pid),
          '/image',
        );
      }
    }
    expect(victim).toBeDefined();
    const dead = replicas.find((r) => r.pid === victim)!;
    await dead.stop('SIGKILL');
    server.route('/killed.img', { body: data, lastModified: new Date(0), etag: '"k1"', ranges: true });

    const { results } = await fetching;
    expect(results[0]!.error).toBeUndefined();
    expect(fs.readFileSync(setup.dest('killed')).equals(data)).toBe(true);
    const gets = server.requests.filter((r) => r.method === 'GET' && r.path === '/killed.img');
    expect(gets.at(-1)!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(workLeft()).toEqual([]);
    replicas = [...replicas.filter((r) => r !== dead), await startWorker(setup.config)];
  }, 60_000);

  it('hands a running job back on SIGTERM after the grace period; another replica finishes it', async () => {
    const data = randomBytes(12 << 20);
    server.route('/handback.img', {
      body: data,
      lastModified: new Date(0),
      etag: '"h1"',
      ranges: true,
      stallAt: 9 << 20,
    });
    const p = client.fetchImage({
      host: HOST,
      cache: 'instance',
      href: server.url('/handback.img'),
      dest: setup.dest('handback'),
    });
    let busy: number | undefined;
    for (let i = 0; i < 200 && !busy; i++) {
      await new Promise((r) => setTimeout(r, 50));
      busy = whoHasOpen(
        replicas.map((r) => r.pid),
        '/image',
      );
    }
    expect(busy).toBeDefined();
    const leaving = replicas.find((r) => r.pid === busy)!;
    const code = await leaving.stop('SIGTERM');
    expect(code).toBe(0);
    expect(leaving.output()).toContain('handing running jobs back');
    server.route('/handback.img', { body: data, lastModified: new Date(0), etag: '"h1"', ranges: true });
    const r = await p;
    expect(fs.readFileSync(setup.dest('handback')).equals(data)).toBe(true);
    expect(r.cacheHit).toBe(false);
    replicas = [...replicas.filter((x) => x !== leaving), await startWorker(setup.config)];
  }, 60_000);
});
