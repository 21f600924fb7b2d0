import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { cli } from './run-cli';

/** SIGINT is a typed cancellation, whichever stage sees it first: ABORTED, exit 130 (README "Exit status"). */
let server: ImageServer;
let root: string;

beforeAll(async () => {
  server = await startImageServer();
  root = tmpDir('imagecache-cli-int-');
});

afterAll(() => server.close());

test('SIGINT during a download exits 130 with ABORTED, and leaves no destination', async () => {
  server.route('/stall.img', { body: randomBytes(8 << 20), lastModified: new Date(0), stallAt: 1 << 20 });
  const dest = path.join(root, 'disk.img');
  let pid = 0;
  const running = cli(
    ['fetch', server.url('/stall.img'), dest, '--master-dir', path.join(root, 'master'), '--json'],
    { onSpawn: (p) => (pid = p) },
  );
  for (let i = 0; i < 400 && server.count('GET', '/stall.img') === 0; i++)
    await new Promise((r) => setTimeout(r, 25));
  expect(server.count('GET', '/stall.img')).toBe(1);
  process.kill(pid, 'SIGINT');
  const r = await running;
  expect([r.code, r.json().error.code]).toEqual([130, 'ABORTED']);
  expect(fs.existsSync(dest)).toBe(false);
}, 30_000);
