// Image servers that close the connection after every body (python3 -m http.server speaks HTTP/1.0; a raw
// server answering `Connection: close`) used to end the worker process that fetched from them (undici 7's
// paused-parser assertion, nodejs/undici#5360). A real worker process fetches 50 images from each; every one
// must arrive whole and the worker must still be the same live process afterwards.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ImageCacheClient } from '@imagecache/queue';
import { startPythonHttpServer, tmpDir } from '@imagecache/testing';
import {
  hostSetup,
  SHARED_REDIS,
  startWorker,
  uniquePrefix,
  type HostSetup,
  type WorkerProcess,
} from './harness';

const HOST = 'close-host';
const COUNT = 50;
const prefix = uniquePrefix();
const images = Array.from({ length: COUNT }, () => randomBytes((3 << 20) + 4321));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let setup: HostSetup;
let worker: WorkerProcess;
let client: ImageCacheClient;
let python: { base: string; close(): void };
let pythonBase: string;
let raw: net.Server;
let rawBase: string;

beforeAll(async () => {
  const dir = tmpDir('imagecache-close-');
  images.forEach((img, i) => fs.writeFileSync(path.join(dir, `img-${i}.raw`), img));
  python = await startPythonHttpServer(dir);
  pythonBase = python.base;
  // HTTP/1.1 with Connection: close and the FIN right behind the body; HEAD answered too.
  raw = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.once('data', (d) => {
      const [method, target] = d.toString('latin1').split(' ');
      const i = Number(/img-(\d+)/.exec(target ?? '')?.[1]);
      const img = images[i];
      if (!img) return sock.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      sock.write(
        `HTTP/1.1 200 OK\r\nContent-Length: ${img.length}\r\nLast-Modified: ${new Date(0).toUTCString()}\r\n` +
          'Connection: close\r\n\r\n',
      );
      if (method === 'HEAD') sock.end();
      else sock.end(img);
    });
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  rawBase = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`;

  setup = hostSetup({ host: HOST, redis: SHARED_REDIS, prefix, caches: ['python', 'raw'] });
  worker = await startWorker(setup.config);
  client = new ImageCacheClient({
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    pollIntervalMs: 300,
  });
}, 30_000);

afterAll(async () => {
  await client.close();
  await worker.stop('SIGKILL');
  python.close();
  await new Promise((r) => raw.close(r));
});

describe('a worker fetching from servers that close the connection after each body', () => {
  for (const cache of ['python', 'raw'] as const) {
    it(`${cache}: ${COUNT} fetches complete with the right bytes and the worker lives on`, async () => {
      const base = cache === 'python' ? pythonBase : rawBase;
      const results = await Promise.all(
        images.map((_, i) =>
          client.fetchImage({
            host: HOST,
            cache,
            href: `${base}/img-${i}.raw`,
            dest: setup.dest(`${cache}-${i}`),
            expectedChecksum: `sha256:${sha(images[i]!)}`,
          }),
        ),
      );
      expect(results.every((r) => r.cacheHit === false)).toBe(true);
      images.forEach((img, i) => expect(sha(fs.readFileSync(setup.dest(`${cache}-${i}`)))).toBe(sha(img)));
      expect(worker.child.exitCode).toBeNull();
      expect(worker.child.signalCode).toBeNull();
      expect(() => process.kill(worker.pid, 0)).not.toThrow();
    }, 120_000);
  }
});
