import * as http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApi, startApi, type RunningApi } from '@imagecache/api';
import type { HostConfig } from '@imagecache/config';
import { NoWorker } from '@imagecache/errors';
import { ImageCacheClient, queueNames } from '@imagecache/queue';
import { announceIdleWorker, basic, dropPrefix, redisConfig, SHARED_REDIS } from './helpers';

/** Issue 9, A1–A4: what an attacker with valid API credentials (or none, on loopback) could do. */
const redis = redisConfig();
const HOST = 'node-hard';
const AUTH = basic('admin', 'pw');
let withdraw: () => Promise<void>;

beforeAll(async () => {
  withdraw = await announceIdleWorker(redis, HOST, ['instance']);
});

afterAll(async () => {
  await withdraw();
  await dropPrefix(redis.prefix);
});

/** Every key under the test's prefix. */
async function keysUnderPrefix(): Promise<string[]> {
  const r = new Redis(SHARED_REDIS);
  try {
    return (await r.keys(`${redis.prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}:*`)).sort();
  } finally {
    r.disconnect();
  }
}

const fetchBody = (host: string, cache: string, extra: object = {}) => ({
  host,
  cache,
  href: 'http://127.0.0.1:1/x.img',
  dest: '/tmp/hardening-x.img',
  wait: false,
  ...extra,
});

describe('A1: --read-only', () => {
  let ro: FastifyInstance;
  beforeAll(async () => {
    ro = await buildApi({
      redis,
      hosts: [{ host: HOST, caches: ['instance'] }],
      board: { username: 'admin', password: 'pw', readOnly: true, discover: false },
      logger: false,
      defaultMetrics: false,
    });
  });
  afterAll(() => ro.close());

  it('refuses every change through /v1 with 403 FORBIDDEN, and queues nothing', async () => {
    const before = await keysUnderPrefix();
    const calls = [
      { method: 'POST' as const, url: '/v1/fetch', payload: fetchBody(HOST, 'instance') },
      { method: 'POST' as const, url: '/v1/clean-up', payload: { host: HOST, cache: 'instance' } },
      {
        method: 'POST' as const,
        url: '/v1/clean-up-caches',
        payload: { host: HOST, directory: '/tmp', images: [{ href: 'http://127.0.0.1:1/x.img' }] },
      },
      { method: 'DELETE' as const, url: `/v1/jobs/${queueNames.fetch(HOST, 'instance')}~x` },
      { method: 'PUT' as const, url: '/v1/anything' },
    ];
    for (const c of calls) {
      const r = await ro.inject({ ...c, headers: { authorization: AUTH } });
      expect([c.method, c.url, r.statusCode]).toEqual([c.method, c.url, 403]);
      expect(r.json()).toEqual({ error: { code: 'FORBIDDEN', message: expect.stringMatching(/read-only/) } });
    }
    expect(await keysUnderPrefix()).toEqual(before);
    // Reading still works; credentials still come first.
    const read = await ro.inject({
      method: 'GET',
      url: `/v1/jobs/${queueNames.fetch(HOST, 'instance')}~x`,
      headers: { authorization: AUTH },
    });
    expect(read.statusCode).toBe(404);
    expect((await ro.inject({ method: 'POST', url: '/v1/fetch', payload: {} })).statusCode).toBe(401);
  });
});

describe('A2: long host names', () => {
  let app: FastifyInstance;
  const longHost = `rack-07-${'x'.repeat(34)}.example.org`; // 54 characters
  let withdrawLong: () => Promise<void>;
  beforeAll(async () => {
    withdrawLong = await announceIdleWorker(redis, longHost, ['instance']);
    app = await buildApi({
      redis,
      hosts: [{ host: longHost, caches: ['instance'] }],
      board: { username: 'admin', password: 'pw', discover: false },
      logger: false,
      defaultMetrics: false,
    });
  });
  afterAll(async () => {
    await app.close();
    await withdrawLong();
  });

  it("gives job ids that fit every route: the 202's Location reads and cancels the job", async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/fetch',
      payload: fetchBody(longHost, 'instance'),
      headers: { authorization: AUTH },
    });
    expect(r.statusCode).toBe(202);
    const { jobId } = r.json() as { jobId: string };
    expect(jobId.length).toBeGreaterThan(100);
    const view = await app.inject({
      method: 'GET',
      url: r.headers.location as string,
      headers: { authorization: AUTH },
    });
    expect(view.statusCode).toBe(200);
    expect(view.json()).toMatchObject({ id: jobId, state: 'waiting' });
    const board = await app.inject({
      method: 'GET',
      url: `/board/api/queues/${encodeURIComponent(queueNames.fetch(longHost, 'instance'))}/${encodeURIComponent(jobId)}`,
      headers: { authorization: AUTH },
    });
    expect(board.statusCode).toBe(200);
    const del = await app.inject({
      method: 'DELETE',
      url: r.headers.location as string,
      headers: { authorization: AUTH },
    });
    expect(del.statusCode).toBe(202);
  });

  it('answers router errors (414, a bad %-escape) in the documented shape', async () => {
    const long = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${'a'.repeat(2000)}`,
      headers: { authorization: AUTH },
    });
    expect(long.statusCode).toBe(414);
    expect(long.json()).toEqual({ error: { code: 'INVALID_REQUEST', message: expect.any(String) } });
    const bad = await app.inject({ method: 'GET', url: '/v1/jobs/%zz', headers: { authorization: AUTH } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ error: { code: 'INVALID_REQUEST', message: expect.any(String) } });
  });
});

/** A request over a real socket with the Host header given (fetch() would not let a test set it). */
function request(
  url: string,
  method: string,
  host: string,
  body?: object,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const req = http.request(
      url,
      {
        method,
        headers: { host, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('A3: no board auth on loopback', () => {
  let api: RunningApi;
  const config = { host: HOST, caches: [{ name: 'instance' }], redis } as unknown as HostConfig;
  beforeAll(async () => {
    api = await startApi(config, { port: 0, board: { allowNoAuthOnLoopback: true }, logger: false });
  });
  afterAll(() => api.close());

  it('refuses a Host header that is not loopback (DNS rebinding), on /v1 and the board', async () => {
    const before = await keysUnderPrefix();
    for (const host of [
      'attacker.example',
      `attacker.example:${api.port}`,
      '10.0.0.1',
      'localhost.evil.com',
    ]) {
      for (const [method, path, body] of [
        ['POST', '/v1/fetch', fetchBody(HOST, 'instance')],
        ['GET', `/v1/jobs/${queueNames.fetch(HOST, 'instance')}~x`, undefined],
        ['GET', '/board/api/queues', undefined],
      ] as const) {
        const r = await request(`${api.url}${path}`, method, host, body);
        expect([host, path, r.status]).toEqual([host, path, 403]);
        expect(r.json).toEqual({ error: { code: 'FORBIDDEN', message: expect.stringMatching(/Host/) } });
      }
    }
    expect(await keysUnderPrefix()).toEqual(before);
  });

  it('answers loopback names and addresses, with or without a port', async () => {
    for (const host of [
      `localhost:${api.port}`,
      'localhost',
      `127.0.0.1:${api.port}`,
      '127.0.0.2',
      '[::1]:80',
    ]) {
      const r = await request(`${api.url}/v1/jobs/${queueNames.fetch(HOST, 'instance')}~x`, 'GET', host);
      expect([host, r.status]).toEqual([host, 404]);
    }
  });
});

describe('A4: hosts and caches no live worker serves', () => {
  let app: FastifyInstance;
  let client: ImageCacheClient;
  beforeAll(async () => {
    app = await buildApi({
      redis,
      hosts: [{ host: HOST, caches: ['instance'] }],
      board: { username: 'admin', password: 'pw' },
      logger: false,
      defaultMetrics: false,
      discoverIntervalMs: 0,
    });
    client = new ImageCacheClient({ redis });
  });
  afterAll(async () => {
    await client.close();
    await app.close();
  });

  it('refuses 100 fetches of made-up hosts and caches at once with 409 NO_WORKER: no queue, no series', async () => {
    const before = await keysUnderPrefix();
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/v1/fetch',
          // Half name a made-up host, half a made-up cache of a served host; half of them wait.
          payload: fetchBody(i % 2 ? `made-up-${i}` : HOST, i % 2 ? 'instance' : `made-up-${i}`, {
            wait: i % 4 < 2,
          }),
          headers: { authorization: AUTH },
        }),
      ),
    );
    expect(Date.now() - started).toBeLessThan(5000);
    for (const r of answers) {
      expect(r.statusCode).toBe(409);
      expect(r.json()).toMatchObject({ error: { code: 'NO_WORKER', retryable: true } });
    }
    expect((answers[1]!.json() as { error: { message: string } }).error.message).toMatch(
      /no live worker serves cache instance of host made-up-1/,
    );
    const cleanUp = await app.inject({
      method: 'POST',
      url: '/v1/clean-up',
      payload: { host: 'made-up', cache: 'instance' },
      headers: { authorization: AUTH },
    });
    expect(cleanUp.statusCode).toBe(409);
    const cleanCaches = await app.inject({
      method: 'POST',
      url: '/v1/clean-up-caches',
      payload: { host: 'made-up', directory: '/tmp', images: [{ href: 'http://127.0.0.1:1/x' }] },
      headers: { authorization: AUTH },
    });
    expect(cleanCaches.statusCode).toBe(409);

    expect(await keysUnderPrefix()).toEqual(before);
    const queues = (
      (
        await app.inject({ method: 'GET', url: '/board/api/queues', headers: { authorization: AUTH } })
      ).json() as { queues: { name: string }[] }
    ).queues.map((q) => q.name);
    expect(queues.filter((n) => n.includes('made-up'))).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).not.toContain('made-up');
  });

  it('refuses through the client with the typed error, before anything is written', async () => {
    const before = await keysUnderPrefix();
    const calls = [
      client.fetchImage({ host: 'made-up', cache: 'instance', href: 'http://u:pw@h/x', dest: '/tmp/x' }),
      client.enqueueFetch({ host: HOST, cache: 'made-up', href: 'http://h/x', dest: '/tmp/x' }),
      client.cleanUp({ host: 'made-up', cache: 'instance' }),
      client.list({ host: 'made-up', cache: 'instance' }),
      client.cleanUpCaches({ host: 'made-up', directory: '/tmp', images: [{ href: 'http://h/x' }] }),
    ];
    for (const c of calls) {
      const err = await c.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoWorker);
      expect((err as NoWorker).code).toBe('NO_WORKER');
    }
    expect(await keysUnderPrefix()).toEqual(before);
  });

  it('/readyz and imagecache_workers_live name a configured cache without a live worker', async () => {
    const ok = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ok.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toContain(
      `imagecache_workers_live{host="${HOST}",cache="instance"} 1`,
    );
    const other = await buildApi({
      redis,
      hosts: [{ host: HOST, caches: ['instance', 'kernels'] }],
      board: { username: 'admin', password: 'pw', discover: false },
      logger: false,
      defaultMetrics: false,
    });
    try {
      const r = await other.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual({
        status: 'unavailable',
        checks: { redis: 'ok', workers: `no live worker for kernels@${HOST}` },
        unserved: [{ host: HOST, cache: 'kernels' }],
      });
      const metrics = (await other.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toContain(`imagecache_workers_live{host="${HOST}",cache="kernels"} 0`);
      expect(metrics).toContain(`imagecache_workers_live{host="${HOST}",cache="instance"} 1`);
    } finally {
      await other.close();
    }
  });
});
