// R1 (issue 11): a caller whose Redis goes away gets QUEUE_UNAVAILABLE within a bounded time, and a result that
// was produced while Redis lost the job (restarted without persistence) is not reported as lost.
// A redis-server of the test's own (no persistence), a real worker process, a slow image server.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { QueueUnavailable } from '@imagecache/errors';
import { ImageCacheClient } from '@imagecache/queue';
import { hostSetup, startOwnRedis, startWorker, uniquePrefix, type WorkerProcess } from './harness';
import { closeServer, listenLocal } from '@imagecache/testing';

const SIZE = 256 * 1024;
let server: http.Server;
let base = '';
let gets = 0;

beforeAll(async () => {
  // The body takes about 3 s: 16 KiB every 200 ms.
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(SIZE) });
    if (req.method === 'HEAD') return res.end();
    gets++;
    let sent = 0;
    const t = setInterval(() => {
      res.write(Buffer.alloc(16 * 1024, 0x5a));
      sent += 16 * 1024;
      if (sent >= SIZE) {
        clearInterval(t);
        res.end();
      }
    }, 200);
    res.on('close', () => clearInterval(t));
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
});

async function untilDownloading(before: number): Promise<void> {
  for (let i = 0; i < 200 && gets === before; i++) await new Promise((r) => setTimeout(r, 25));
  expect(gets).toBeGreaterThan(before);
  await new Promise((r) => setTimeout(r, 300));
}

describe('Redis goes away while a caller waits', () => {
  let worker: WorkerProcess | undefined;
  afterEach(async () => {
    await worker?.stop('SIGKILL');
    worker = undefined;
  });

  it('restarted empty: the result the worker produced still reaches the caller', async () => {
    const redis = await startOwnRedis({ persist: false });
    const prefix = uniquePrefix();
    const setup = hostSetup({ host: 'r1', redis: redis.url, prefix });
    worker = await startWorker(setup.config);
    const client = new ImageCacheClient({
      redis: { mode: 'standalone', url: redis.url, prefix },
      pollIntervalMs: 300,
      unavailableAfterMs: 20_000,
    });
    try {
      const before = gets;
      const call = client.fetchImage({
        host: 'r1',
        cache: 'instance',
        href: `${base}/disk.img`,
        dest: setup.dest('d'),
      });
      call.catch(() => undefined);
      await untilDownloading(before);
      await redis.restart(); // every job, key and announcement is gone
      const result = await call;
      expect(result.destPath).toBe(setup.dest('d'));
      expect(fs.statSync(setup.dest('d')).size).toBe(SIZE);
    } finally {
      await client.close();
      redis.stop();
      fs.rmSync(setup.root, { recursive: true, force: true });
    }
  }, 60_000);

  it('stopped: QUEUE_UNAVAILABLE within unavailableAfterMs and a poll', async () => {
    const redis = await startOwnRedis({ persist: false });
    const prefix = uniquePrefix();
    const setup = hostSetup({ host: 'r1', redis: redis.url, prefix });
    worker = await startWorker(setup.config);
    const client = new ImageCacheClient({
      redis: { mode: 'standalone', url: redis.url, prefix },
      pollIntervalMs: 300,
      unavailableAfterMs: 2000,
    });
    try {
      const before = gets;
      const call = client
        .fetchImage({ host: 'r1', cache: 'instance', href: `${base}/disk.img`, dest: setup.dest('d') })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await untilDownloading(before);
      redis.stop();
      const stopped = Date.now();
      const err = await call;
      expect(err).toBeInstanceOf(QueueUnavailable);
      expect((err as QueueUnavailable).code).toBe('QUEUE_UNAVAILABLE');
      expect((err as Error).message).toMatch(/unreachable/);
      expect(Date.now() - stopped).toBeLessThan(2000 + 300 + 2500);
    } finally {
      await client.close();
      fs.rmSync(setup.root, { recursive: true, force: true });
    }
  }, 60_000);
});
