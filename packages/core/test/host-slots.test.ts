// Issue 11, open item: downloadConcurrency holds for the host, across processes and replicas (slot locks in one
// folder), not per process.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { HostDownloadSlots, ImageCache } from '@imagecache/core';
import { OperationAborted } from '@imagecache/errors';
import { closeHttpConnections } from '@imagecache/sources';
import { tmpDir, closeServer, listenLocal } from '@imagecache/testing';

let server: http.Server;
let base = '';
let inFlight = 0;
let maxInFlight = 0;
const body = Buffer.alloc(64 * 1024, 1);

beforeAll(async () => {
  // Each GET takes 400 ms: concurrent downloads overlap.
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(body.length) });
    if (req.method === 'HEAD') return res.end();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end(body);
    }, 400);
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
  await closeHttpConnections();
});

describe('host-wide download slots', () => {
  it('two engines with limiters of their own (two processes) run at most `size` downloads together', async () => {
    const root = tmpDir('imagecache-slots-');
    const slots = path.join(root, 'slots');
    const caches = [0, 1].map(
      (i) =>
        new ImageCache({
          masterDir: path.join(root, `m${i}`),
          forceRaw: false,
          limiter: new HostDownloadSlots(2, slots),
        }),
    );
    fs.mkdirSync(path.join(root, 'dest'));
    maxInFlight = 0;
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        caches[i % 2]!.fetchImage(`${base}/img${i}`, path.join(root, 'dest', `d${i}`)),
      ),
    );
    expect(maxInFlight).toBe(2);
    for (let i = 0; i < 8; i++) expect(fs.statSync(path.join(root, 'dest', `d${i}`)).size).toBe(body.length);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('holds against another process, and a waiter can be cancelled', async () => {
    const root = tmpDir('imagecache-slots-');
    const slots = path.join(root, 'slots');
    // Another process holds the only slot for 1.5 s (proper-lockfile's lock folder, as the slots use).
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const lf = require(${JSON.stringify(require.resolve('proper-lockfile', { paths: [path.join(__dirname, '..')] }))});` +
          `require('fs').mkdirSync(${JSON.stringify(slots)}, { recursive: true });` +
          `lf.lock(${JSON.stringify(path.join(slots, 'slot-0'))}, { realpath: false, lockfilePath: ${JSON.stringify(path.join(slots, 'slot-0.lock'))} })` +
          `.then((release) => { process.stdout.write('held\\n'); setTimeout(() => release().then(() => process.exit(0)), 1500); });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise((r) => child.stdout!.once('data', r));
    const limiter = new HostDownloadSlots(1, slots);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(limiter.acquire(ac.signal)).rejects.toBeInstanceOf(OperationAborted);
    const started = Date.now();
    const release = await limiter.acquire();
    expect(Date.now() - started).toBeGreaterThan(900);
    release();
    await exited;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('falls back to a limit of its own when the folder is unusable: a fetch never fails for it', async () => {
    const root = tmpDir('imagecache-slots-');
    fs.writeFileSync(path.join(root, 'file'), 'x');
    const limiter = new HostDownloadSlots(1, path.join(root, 'file', 'slots'));
    const release = await limiter.acquire();
    // still a limit: a second holder waits for the first
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(limiter.acquire(ac.signal)).rejects.toBeInstanceOf(OperationAborted);
    release();
    (await limiter.acquire())();
    fs.rmSync(root, { recursive: true, force: true });
  });
});
