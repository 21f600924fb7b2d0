// The resume rule every source uses (http, glance, oci): against a real server answering 206, 416, 200 and
// a 206 of the wrong range, through the sources' own HTTP client.
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { closeHttpConnections, rangedGet, resolveHttpOptions } from '@imagecache/sources';
import { requestFollowing } from '../src/http/client';
import { dispatchersFor } from '../src/http/dispatchers';
import { contextFor } from '../src/http/request';
import { readAll } from './helpers';
import { closeServer, listenLocal } from '@imagecache/testing';

const body = randomBytes(256 * 1024);
const ETAG = '"v1"';
let server: http.Server;
let base = '';
const seen: { path: string; range?: string; ifRange?: string }[] = [];

function whole(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-length': String(body.length), etag: ETAG });
  res.end(body);
}

function part(res: http.ServerResponse, start: number): void {
  res.writeHead(206, {
    'content-length': String(body.length - start),
    'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
    etag: ETAG,
  });
  res.end(body.subarray(start));
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const range = req.headers.range;
    const ifRange = req.headers['if-range'] as string | undefined;
    seen.push({ path: req.url!, range, ifRange });
    const start = Number(/^bytes=(\d+)-$/.exec(range ?? '')?.[1] ?? NaN);
    if (Number.isNaN(start)) return whole(res);
    switch (req.url) {
      case '/honours':
        // If-Range: the range only while the file is still the one named.
        return ifRange === undefined || ifRange === ETAG ? part(res, start) : whole(res);
      case '/wrong-range':
        return part(res, 0);
      case '/past-end':
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        return res.end();
      case '/unavailable':
        res.writeHead(503, { 'content-length': '0' });
        return res.end();
      default:
        return whole(res);
    }
  });
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
  await closeHttpConnections();
});
beforeEach(() => {
  seen.length = 0;
});

function getter(path: string) {
  const options = resolveHttpOptions(undefined);
  const url = new URL(path, base);
  return (headers: Record<string, string>) =>
    requestFollowing({
      dispatchers: dispatchersFor(options),
      ctx: contextFor(url.href, options),
      url,
      method: 'GET',
      headers,
      stream: true,
      maxRedirects: options.maxRedirects,
    });
}

describe('rangedGet', () => {
  it('206 starting at the offset: resumed, with the size of the whole file; If-Range sent when given', async () => {
    const offset = 100_000;
    const { res, resumed } = await rangedGet(getter('/honours'), offset, ETAG);
    expect(res.status).toBe(206);
    expect(resumed).toEqual({ start: offset, totalSize: body.length });
    expect((await readAll(res.body!)).equals(body.subarray(offset))).toBe(true);
    expect(seen).toEqual([{ path: '/honours', range: `bytes=${offset}-`, ifRange: ETAG }]);
  });

  it('a plain Range (no validator) sends no If-Range', async () => {
    const { resumed, res } = await rangedGet(getter('/honours'), 10);
    expect(resumed).toEqual({ start: 10, totalSize: body.length });
    res.body!.destroy();
    expect(seen).toEqual([{ path: '/honours', range: 'bytes=10-', ifRange: undefined }]);
  });

  it('200 (If-Range no longer matches, or Range ignored): the whole file, as the answer of a plain GET', async () => {
    for (const path of ['/honours', '/ignores']) {
      seen.length = 0;
      const { res, resumed } = await rangedGet(getter(path), 5, '"v0"');
      expect(resumed).toBeUndefined();
      expect(res.status).toBe(200);
      expect((await readAll(res.body!)).equals(body)).toBe(true);
      expect(seen).toHaveLength(1);
    }
  });

  it('416 (past the end: the file shrank): starts over with one plain GET', async () => {
    const { res, resumed } = await rangedGet(getter('/past-end'), body.length + 10, ETAG);
    expect(resumed).toBeUndefined();
    expect(res.status).toBe(200);
    expect((await readAll(res.body!)).equals(body)).toBe(true);
    expect(seen.map((s) => s.range)).toEqual([`bytes=${body.length + 10}-`, undefined]);
  });

  it('a 206 of another range: dropped, and one plain GET instead', async () => {
    const { res, resumed } = await rangedGet(getter('/wrong-range'), 1000);
    expect(resumed).toBeUndefined();
    expect(res.status).toBe(200);
    expect((await readAll(res.body!)).equals(body)).toBe(true);
    expect(seen.map((s) => s.range)).toEqual(['bytes=1000-', undefined]);
  });

  it("an error status is the caller's to read; offset 0 is a plain GET", async () => {
    const failed = await rangedGet(getter('/unavailable'), 1000);
    expect(failed.res.status).toBe(503);
    expect(failed.resumed).toBeUndefined();
    expect(seen).toHaveLength(1);
    seen.length = 0;
    const { res, resumed } = await rangedGet(getter('/honours'), 0, ETAG);
    expect(resumed).toBeUndefined();
    expect(res.status).toBe(200);
    res.body!.destroy();
    expect(seen).toEqual([{ path: '/honours', range: undefined, ifRange: undefined }]);
  });
});
