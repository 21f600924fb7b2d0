import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { buildApi, startApi } from '@imagecache/api';
import type { HostConfig } from '@imagecache/config';
import { ConfigError } from '@imagecache/errors';
import { connectRedis, queueNames } from '@imagecache/queue';
import { announceIdleWorker, basic, dropPrefix, closedPort, memoryStream, redisConfig } from './helpers';

/**
 * The API's edge, with a worker announced that takes no job: auth, validation, jobs that wait, metrics,
 * readiness.
 */
const redis = redisConfig();
const HOST = 'node-edge';
const AUTH = basic('admin', 'board-pw');
const logs = memoryStream();
let app: FastifyInstance;
let withdraw: () => Promise<void>;

beforeAll(async () => {
  withdraw = await announceIdleWorker(redis, HOST, ['instance', 'kernels']);
  app = await buildApi({
    redis,
    hosts: [{ host: HOST, caches: ['instance', 'kernels'] }],
    board: { username: 'admin', password: 'board-pw' },
    logger: { level: 'debug', stream: logs },
    defaultMetrics: false,
  });
});

afterAll(async () => {
  await app.close();
  await withdraw();
  await dropPrefix(redis.prefix);
});

const post = (url: string, payload: unknown, headers: Record<string, string> = { authorization: AUTH }) =>
  app.inject({ method: 'POST', url, payload: payload as object, headers });

describe('board auth', () => {
  it('answers 401 with a challenge without credentials, or with wrong ones', async () => {
    const none = await app.inject({ method: 'GET', url: '/board' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="imagecache"/);
    expect(none.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    const wrong = await app.inject({
      method: 'GET',
      url: '/board/api/queues',
      headers: { authorization: basic('admin', 'nope') },
    });
    expect(wrong.statusCode).toBe(401);
    const garbage = await app.inject({
      method: 'GET',
      url: '/board/',
      headers: { authorization: 'Bearer x' },
    });
    expect(garbage.statusCode).toBe(401);
  });

  it('serves the board and its API with the credentials, every configured queue listed', async () => {
    const page = await app.inject({ method: 'GET', url: '/board', headers: { authorization: AUTH } });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    const api = await app.inject({
      method: 'GET',
      url: '/board/api/queues',
      headers: { authorization: AUTH },
    });
    expect(api.statusCode).toBe(200);
    const names = (api.json() as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(
      [
        queueNames.fetch(HOST, 'instance'),
        queueNames.clean(HOST, 'instance'),
        queueNames.fetch(HOST, 'kernels'),
        queueNames.clean(HOST, 'kernels'),
        queueNames.cleanCaches(HOST),
      ].sort(),
    );
  });

  it('guards /v1 with the same credentials', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/jobs/x' });
    expect(r.statusCode).toBe(401);
  });

  it('is not fooled by %-escaped paths', async () => {
    for (const url of ['/%62oard/api/queues', '/%76%31/jobs/x', '/b%6Fard']) {
      const r = await app.inject({ method: 'GET', url });
      expect([url, r.statusCode]).toEqual([url, 401]);
    }
    const fetch = await app.inject({ method: 'POST', url: '/%761/fetch', payload: {} });
    expect(fetch.statusCode).toBe(401);
  });

  it('leaves /healthz, /readyz and /metrics open', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', checks: { redis: 'ok', workers: 'ok' } });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });
});

describe('queue discovery', () => {
  it("lists queues found in Redis under the prefix (other hosts' workers) on the board and in /metrics", async () => {
    const withdrawOther = await announceIdleWorker(redis, 'node-other', ['ramdisks']);
    const r = await post('/v1/fetch', {
      host: 'node-other',
      cache: 'ramdisks',
      href: 'http://127.0.0.1:1/r.img',
      dest: '/tmp/r.img',
      wait: false,
    });
    expect(r.statusCode).toBe(202);
    const other = await buildApi({
      redis,
      board: { username: 'u', password: 'p' },
      logger: false,
      defaultMetrics: false,
    });
    try {
      const names = async () =>
        (
          (
            await other.inject({
              method: 'GET',
              url: '/board/api/queues',
              headers: { authorization: basic('u', 'p') },
            })
          ).json() as {
            queues: { name: string }[];
          }
        ).queues.map((q) => q.name);
      for (let i = 0; i < 40 && !(await names()).includes(queueNames.fetch('node-other', 'ramdisks')); i++) {
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(await names()).toContain(queueNames.fetch('node-other', 'ramdisks'));
      const metrics = (await other.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toContain(
        'imagecache_queue_jobs{host="node-other",cache="ramdisks",kind="fetch",state="waiting"} 1',
      );
    } finally {
      await other.close();
      await withdrawOther();
      const { jobId } = r.json() as { jobId: string };
      await app.inject({
        method: 'DELETE',
        url: `/v1/jobs/${encodeURIComponent(jobId)}`,
        headers: { authorization: AUTH },
      });
    }
  });
});

describe('refusing to start without board credentials', () => {
  const config = { host: HOST, caches: [{ name: 'instance' }], redis } as unknown as HostConfig;

  it('refuses without credentials unless no-auth-on-loopback is asked for', async () => {
    await expect(buildApi({ redis, board: {}, logger: false })).rejects.toThrow(ConfigError);
    await expect(buildApi({ redis, board: { username: 'admin' }, logger: false })).rejects.toThrow(
      /both a username and a password/,
    );
  });

  it('refuses a non-loopback bind without credentials, even when asked for no auth', async () => {
    await expect(
      buildApi({ redis, board: { allowNoAuthOnLoopback: true }, bind: '0.0.0.0', logger: false }),
    ).rejects.toThrow(/loopback address only, not 0\.0\.0\.0/);
    await expect(
      startApi(config, { port: 0, host: '0.0.0.0', board: { allowNoAuthOnLoopback: true }, logger: false }),
    ).rejects.toThrow(ConfigError);
  });

  it('serves without credentials on loopback when asked, over a real socket', async () => {
    const api = await startApi(config, {
      port: 0,
      host: '127.0.0.1',
      board: { allowNoAuthOnLoopback: true },
      logger: false,
    });
    try {
      expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const board = await fetch(`${api.url}/board/api/queues`);
      expect(board.status).toBe(200);
      const health = await fetch(`${api.url}/healthz`);
      expect(await health.json()).toEqual({ status: 'ok' });
      const unknown = await fetch(
        `${api.url}/v1/jobs/${encodeURIComponent(`${queueNames.fetch(HOST, 'instance')}~nope`)}`,
      );
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('JOB_NOT_FOUND');
    } finally {
      await api.close();
    }
  });

  it('asks for credentials over a real socket when it has them', async () => {
    const api = await startApi(config, { port: 0, board: { username: 'u', password: 'p' }, logger: false });
    try {
      expect((await fetch(`${api.url}/board`)).status).toBe(401);
      expect((await fetch(`${api.url}/board`, { headers: { authorization: basic('u', 'p') } })).status).toBe(
        200,
      );
    } finally {
      await api.close();
    }
  });

  it('changes nothing through a read-only board', async () => {
    const ro = await buildApi({
      redis,
      hosts: [{ host: HOST, caches: ['instance'] }],
      board: { username: 'u', password: 'p', readOnly: true, discover: false },
      logger: false,
    });
    try {
      const q = encodeURIComponent(queueNames.fetch(HOST, 'instance'));
      const pause = await ro.inject({
        method: 'PUT',
        url: `/board/api/queues/${q}/pause`,
        headers: { authorization: basic('u', 'p') },
      });
      expect(pause.statusCode).toBe(403);
      const list = await ro.inject({
        method: 'GET',
        url: '/board/api/queues',
        headers: { authorization: basic('u', 'p') },
      });
      expect(
        (list.json() as { queues: { readOnlyMode: boolean }[] }).queues.every((x) => x.readOnlyMode),
      ).toBe(true);
    } finally {
      await ro.close();
    }
  });
});

describe('request validation', () => {
  const good = { host: HOST, cache: 'instance', href: 'http://127.0.0.1:1/x.img', dest: '/tmp/x.img' };

  it.each([
    [{ ...good, dest: 'relative/x.img' }, /^dest: must be an absolute path$/],
    [{ host: HOST, cache: 'instance', href: 'http://x/y' }, /^dest: is required$/],
    [{ ...good, cache: 'bad name' }, /^cache: must be 1-64 letters/],
    [{ ...good, expected_checksum: 'sha256:ab' }, /^body: unknown field "expected_checksum"$/],
    [{ ...good, auth: { type: 'digest', username: 'u' } }, /^auth\.type: must be \{type:"basic"/],
    [{ ...good, wait: 'yes' }, /^wait: /],
    [{ ...good, timeoutMs: -1 }, /^timeoutMs: /],
    [[good], /^body: must be a JSON object$/],
  ])('POST /v1/fetch %j → 400 naming the field', async (body, reason) => {
    const r = await post('/v1/fetch', body);
    expect(r.statusCode).toBe(400);
    const { error } = r.json() as { error: { code: string; message: string } };
    expect(error.code).toBe('USAGE_ERROR');
    expect(error.message).toMatch(reason);
  });

  it('names every bad field at once', async () => {
    const r = await post('/v1/clean-up-caches', { host: HOST, directory: 'x', images: [] });
    expect(r.statusCode).toBe(400);
    expect((r.json() as { error: { message: string } }).error.message).toBe(
      'directory: must be an absolute path; images: must list at least one image',
    );
  });

  it('checks clean-up sizes', async () => {
    const r = await post('/v1/clean-up', { host: HOST, cache: 'instance', amount: '12 parsecs' });
    expect(r.statusCode).toBe(400);
    expect((r.json() as { error: { message: string } }).error.message).toMatch(/^amount: /);
  });

  it('answers 400 INVALID_REQUEST to a body that is not JSON', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/fetch',
      payload: '{"host":',
      headers: { authorization: AUTH, 'content-type': 'application/json' },
    });
    expect(r.statusCode).toBe(400);
    expect((r.json() as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
    const text = await app.inject({
      method: 'POST',
      url: '/v1/fetch',
      payload: '<fetch/>',
      headers: { authorization: AUTH, 'content-type': 'application/xml' },
    });
    expect(text.statusCode).toBe(415);
    expect((text.json() as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
  });

  it('answers 404 NOT_FOUND to an unknown route', async () => {
    const r = await app.inject({ method: 'GET', url: '/v2/nothing' });
    expect(r.statusCode).toBe(404);
    expect((r.json() as { error: { code: string } }).error.code).toBe('NOT_FOUND');
  });
});

describe('jobs of a worker that takes none', () => {
  it('enqueues with wait:false, shows it waiting, counts it in /metrics, cancels it', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: 'http://127.0.0.1:1/a.img',
      dest: '/tmp/a.img',
      wait: false,
    });
    expect(r.statusCode).toBe(202);
    const { jobId } = r.json() as { jobId: string };
    expect(r.headers.location).toBe(`/v1/jobs/${encodeURIComponent(jobId)}`);
    const view = await app.inject({
      method: 'GET',
      url: r.headers.location as string,
      headers: { authorization: AUTH },
    });
    expect(view.statusCode).toBe(200);
    expect(view.json()).toMatchObject({
      id: jobId,
      state: 'waiting',
      name: 'fetch',
      data: { dest: '/tmp/a.img' },
    });

    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain(
      `imagecache_queue_jobs{host="${HOST}",cache="instance",kind="fetch",state="waiting"} 1`,
    );
    expect(metrics).toContain(
      `imagecache_queue_jobs{host="${HOST}",cache="kernels",kind="clean",state="active"} 0`,
    );
    expect(metrics).toContain('imagecache_redis_up 1');
    expect(metrics).not.toContain(jobId);

    const del = await app.inject({
      method: 'DELETE',
      url: `/v1/jobs/${encodeURIComponent(jobId)}`,
      headers: { authorization: AUTH },
    });
    expect(del.statusCode).toBe(202);
    expect(del.json()).toEqual({ jobId, state: 'waiting', cancelled: true });
    const gone = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${encodeURIComponent(jobId)}`,
      headers: { authorization: AUTH },
    });
    expect(gone.statusCode).toBe(404);
  });

  it('answers 504 QUEUE_TIMEOUT, with the job id, when nothing answers in time', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: 'http://127.0.0.1:1/b.img',
      dest: '/tmp/b.img',
      timeoutMs: 200,
    });
    expect(r.statusCode).toBe(504);
    const { error } = r.json() as { error: { code: string; jobId: string; retryable: boolean } };
    expect(error.code).toBe('QUEUE_TIMEOUT');
    expect(error.retryable).toBe(true);
    expect(error.jobId).toBe(r.headers['x-imagecache-job-id']);
  });

  it('keeps credentials off the board, out of job views and out of the logs', async () => {
    const href = 'http://alice:url-secret-1@127.0.0.1:1/private.img?token=query-secret-2';
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href,
      dest: '/tmp/private.img',
      auth: { type: 'basic', username: 'bob', password: 'auth-secret-3' },
      // A checksum-file URL behind an algorithm, with credentials of its own (issue 9, C1).
      expectedChecksum: 'sha256:http://carol:checksum-secret-4@127.0.0.1:1/SHA256SUMS',
      wait: false,
    });
    expect(r.statusCode).toBe(202);
    const { jobId, queue } = r.json() as { jobId: string; queue: string };
    const q = encodeURIComponent(queue);
    const id = encodeURIComponent(jobId);
    const seen = [
      (
        await app.inject({
          method: 'GET',
          url: `/board/api/queues?activeQueue=${q}&status=waiting`,
          headers: { authorization: AUTH },
        })
      ).body,
      (
        await app.inject({
          method: 'GET',
          url: `/board/api/queues/${q}/${id}`,
          headers: { authorization: AUTH },
        })
      ).body,
      (
        await app.inject({
          method: 'GET',
          url: `/board/api/queues/${q}/${id}/logs`,
          headers: { authorization: AUTH },
        })
      ).body,
      (await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: { authorization: AUTH } })).body,
      (await app.inject({ method: 'GET', url: '/metrics' })).body,
    ].join('\n');
    expect(seen).toContain(jobId); // the job is there…
    expect(seen).toContain('/private.img');
    expect(seen).toContain('sha256:http://***@127.0.0.1:1/SHA256SUMS');
    for (const secret of ['url-secret-1', 'query-secret-2', 'auth-secret-3', 'checksum-secret-4']) {
      expect(seen).not.toContain(secret); // …its credentials are not
      expect(logs.text()).not.toContain(secret);
    }
    expect(logs.text()).toContain('/v1/fetch'); // requests are logged, bodies not
    await app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: { authorization: AUTH } });
  });

  it('answers 409 JOB_FINISHED to cancelling a finished job', async () => {
    const r = await post('/v1/fetch', {
      host: HOST,
      cache: 'instance',
      href: 'http://127.0.0.1:1/c.img',
      dest: '/tmp/c.img',
      wait: false,
    });
    const { jobId } = r.json() as { jobId: string };
    // Fail it as a worker would (no worker here): the typed error is stored in the job's data.
    const conn = connectRedis(redis, 'worker');
    const workerConn = connectRedis(redis, 'worker'); // BullMQ never closes a connection it was given
    const queue = new Queue(queueNames.fetch(HOST, 'instance'), { connection: conn, prefix: redis.prefix });
    const worker = new Worker(
      queue.name,
      async (job) => {
        await job.updateData({
          ...job.data,
          error: {
            name: 'ImageNotFound',
            code: 'IMAGE_NOT_FOUND',
            message: 'gone',
            retryable: false,
            details: {},
          },
        });
        throw new UnrecoverableError('IMAGE_NOT_FOUND: gone');
      },
      { connection: workerConn, prefix: redis.prefix },
    );
    try {
      const id = encodeURIComponent(jobId);
      for (let i = 0; i < 100; i++) {
        const v = (
          await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: { authorization: AUTH } })
        ).json() as { state: string };
        if (v.state === 'failed') break;
        await new Promise((res) => setTimeout(res, 50));
      }
      const view = (
        await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: { authorization: AUTH } })
      ).json();
      expect(view).toMatchObject({ state: 'failed', error: { code: 'IMAGE_NOT_FOUND' } });
      const del = await app.inject({
        method: 'DELETE',
        url: `/v1/jobs/${id}`,
        headers: { authorization: AUTH },
      });
      expect(del.statusCode).toBe(409);
      expect((del.json() as { error: { code: string } }).error.code).toBe('JOB_FINISHED');
    } finally {
      await worker.close();
      await queue.close();
      conn.disconnect();
      workerConn.disconnect();
    }
  });
});

describe('readiness', () => {
  it('answers /readyz 503 when Redis is unreachable, and /metrics says redis_up 0', async () => {
    const port = await closedPort();
    const down = await buildApi({
      redis: { mode: 'standalone', url: `redis://127.0.0.1:${port}`, prefix: redis.prefix },
      hosts: [{ host: HOST, caches: ['instance'] }],
      board: { username: 'u', password: 'p' },
      logger: false,
    });
    try {
      const r = await down.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({
        status: 'unavailable',
        checks: { redis: expect.stringMatching(/^unreachable: /) },
      });
      expect((await down.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      const metrics = await down.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toContain('imagecache_redis_up 0');
      const fetch = await down.inject({
        method: 'POST',
        url: '/v1/fetch',
        payload: { host: HOST, cache: 'instance', href: 'http://x/y', dest: '/tmp/y' },
        headers: { authorization: basic('u', 'p') },
      });
      expect(fetch.statusCode).toBe(503);
      expect((fetch.json() as { error: { code: string } }).error.code).toBe('QUEUE_UNAVAILABLE');
    } finally {
      await down.close();
    }
  }, 15_000);
});
