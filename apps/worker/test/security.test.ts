import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { masterName } from '@imagecache/core';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import {
  clientProcess,
  hostSetup,
  REPO,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  type WorkerProcess,
} from './harness';

/** Issue 9 through a real worker process and its configuration: destinations (D1, D3) and start-up. */

const image = randomBytes(200_000);
const other = randomBytes(100_000);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const past = new Date(Date.now() - 3600_000);
let server: ImageServer;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  server = await startImageServer();
  server.route('/a.img', { body: image, lastModified: past });
  server.route('/b.img', { body: other, lastModified: past });
});
afterAll(() => server.close());
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});

describe('worker destination policy', () => {
  it('the worker and the API refuse to start without destinations.allowedRoots, naming what to set', () => {
    const prefix = uniquePrefix();
    const setup = hostSetup({ host: 'sec-none', redis: SHARED_REDIS, prefix, destinations: {} });
    for (const verb of [['worker'], ['api', '--no-board-auth', '--port', '0']]) {
      const r = spawnSync(path.join(REPO, 'bin/imagecache'), [...verb, '--config', setup.config], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.status).toBe(3); // CONFIG_ERROR
      expect(r.stderr).toContain(`the ${verb[0]} needs destinations.allowedRoots`);
      expect(r.stderr).toContain('destinations.unrestricted: true');
    }
    fs.rmSync(setup.root, { recursive: true, force: true });
  });

  it("D1/D3: a job naming another cache's master, or a folder outside the roots, fails with INVALID_DESTINATION", async () => {
    const prefix = uniquePrefix();
    const setup = hostSetup({
      host: 'sec-d1',
      redis: SHARED_REDIS,
      prefix,
      caches: ['instance', 'tftp'],
    });
    worker = await startWorker(setup.config);
    const href = server.url('/a.img');
    const fetch = (cache: string, dests: string[], hrefOf = href) =>
      clientProcess({ redis: SHARED_REDIS, prefix, host: 'sec-d1', cache, href: hrefOf, dests });

    const first = await fetch('tftp', [setup.dest('a')]);
    expect(first.results[0]!.ok).toBeDefined();
    const master = path.join(setup.masterDir('tftp'), masterName(href, undefined, false));
    const before = { ino: fs.statSync(master).ino, sha: sha(fs.readFileSync(master)) };

    const outside = tmpDir('imagecache-sec-outside-');
    fs.writeFileSync(path.join(outside, 'passwd'), 'keep');
    const attacks = await fetch(
      'instance',
      [master, path.join(setup.masterDir('tftp'), 'x.img'), path.join(outside, 'passwd')],
      server.url('/b.img'),
    );
    for (const r of attacks.results) expect(r.error?.code).toBe('INVALID_DESTINATION');
    expect(server.count('GET', '/b.img')).toBe(0);
    expect({ ino: fs.statSync(master).ino, sha: sha(fs.readFileSync(master)) }).toEqual(before);
    expect(fs.readFileSync(path.join(outside, 'passwd'), 'utf8')).toBe('keep');

    // tftp's next fetch of the image, with its checksum, serves the image's own bytes.
    const again = await clientProcess({
      redis: SHARED_REDIS,
      prefix,
      host: 'sec-d1',
      cache: 'tftp',
      href,
      dests: [setup.dest('a2')],
      checksum: `sha256:${sha(image)}`,
    });
    expect(again.results[0]!.ok).toMatchObject({ cacheHit: true });
    expect(sha(fs.readFileSync(setup.dest('a2')))).toBe(sha(image));
    fs.rmSync(outside, { recursive: true, force: true });
    fs.rmSync(setup.root, { recursive: true, force: true });
  }, 60_000);
});
