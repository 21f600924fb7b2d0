// H3 (issue 11): a source that trickles bytes keeps the inactivity timeout happy; the minimum rate cuts it off.
import * as http from 'node:http';
import { ImageDownloadFailed } from '@imagecache/errors';
import { closeHttpConnections, DEFAULT_HTTP_OPTIONS, resolveSource } from '@imagecache/sources';
import { caught, readAll } from './helpers';
import { closeServer, listenLocal } from '@imagecache/testing';

let server: http.Server;
let base = '';
const timers = new Set<NodeJS.Timeout>();

/** `/trickle/N/MS`: a 1 MiB body of which N bytes are sent every MS ms. */
beforeAll(async () => {
  server = http.createServer((req, res) => {
    const m = /^\/trickle\/(\d+)\/(\d+)$/.exec(req.url ?? '');
    if (!m) return res.writeHead(404).end();
    const size = 1 << 20;
    res.writeHead(200, { 'content-length': String(size) });
    if (req.method === 'HEAD') return res.end();
    const step = Number(m[1]);
    let sent = 0;
    const t = setInterval(() => {
      const n = Math.min(step, size - sent);
      res.write(Buffer.alloc(n, 0x61));
      sent += n;
      if (sent >= size) {
        clearInterval(t);
        res.end();
      }
    }, Number(m[2]));
    timers.add(t);
    res.on('close', () => clearInterval(t));
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  await closeServer(server);
  await closeHttpConnections();
});

describe('minimum transfer rate', () => {
  it('has a default that never cuts a healthy slow link: 1 KiB/s over 60 s', () => {
    expect(DEFAULT_HTTP_OPTIONS.minRateBytesPerSec).toBe(1024);
    expect(DEFAULT_HTTP_OPTIONS.minRateWindowMs).toBe(60_000);
  });

  it('fails a source below the rate with a retryable ImageDownloadFailed saying so', async () => {
    // 10 bytes every 20 ms = 500 B/s: never inactive, far below 4 KiB/s.
    const source = await resolveSource(`${base}/trickle/10/20`, {
      http: { minRateBytesPerSec: 4096, minRateWindowMs: 500, inactivityTimeoutMs: 60_000 },
    });
    const started = Date.now();
    const err = await caught(source.open().then((b) => readAll(b.stream)));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.code).toBe('IMAGE_DOWNLOAD_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/slower than the minimum rate of 4096 bytes\/s/);
    expect(err.message).toMatch(/http\.minRate/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('cuts 20 trickling sources at once: none holds a slot past its window', async () => {
    const opts = { http: { minRateBytesPerSec: 4096, minRateWindowMs: 500 } };
    const started = Date.now();
    const errors = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const s = await resolveSource(`${base}/trickle/5/50`, opts);
        return caught(s.open().then((b) => readAll(b.stream)));
      }),
    );
    for (const e of errors) expect(e).toBeInstanceOf(ImageDownloadFailed);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('lets a source at or above the rate finish', async () => {
    // 64 KiB every 20 ms ≈ 3 MiB/s; a window of 200 ms sees it many times over.
    const source = await resolveSource(`${base}/trickle/65536/20`, {
      http: { minRateBytesPerSec: 4096, minRateWindowMs: 200 },
    });
    const body = await readAll((await source.open()).stream);
    expect(body.length).toBe(1 << 20);
  });

  it('0 turns it off', async () => {
    const source = await resolveSource(`${base}/trickle/10/20`, {
      http: { minRateBytesPerSec: 0, minRateWindowMs: 200 },
    });
    const body = await source.open();
    const got: Buffer[] = [];
    body.stream.on('data', (c: Buffer) => got.push(c));
    await new Promise((r) => setTimeout(r, 700));
    expect(body.stream.destroyed).toBe(false);
    expect(Buffer.concat(got).length).toBeGreaterThan(0);
    body.stream.destroy();
  });
});
