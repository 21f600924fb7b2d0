import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { RedisConfig } from '@imagecache/config';
import { ConfigError, ImageCacheError, SECRET_LOG_PATHS, UsageError } from '@imagecache/errors';
import {
  connectRedis,
  FleetDirectory,
  ImageCacheClient,
  queueUnavailable,
  prefixOf,
  whenSettled,
  withTimeout,
  WorkerRegistry,
  type RedisClient,
} from '@imagecache/queue';
import { BasicAuth, BOARD_PATH, guard, isLoopback, mountBoard, routedPath, type BoardOptions } from './board';
import { apiError, engineError, sendApiError } from './errors';
import { WorkerLiveness } from './liveness';
import { createApiMetrics } from './metrics';
import { configuredQueues, QueueDirectory, type HostQueues } from './queues';
import {
  CleanUpBodySchema,
  CleanUpCachesBodySchema,
  describeIssues,
  FetchBodySchema,
  JobIdParamsSchema,
} from './schemas';

export interface ApiLoggerOptions {
  /** pino level. Default info. */
  level?: string;
  /** Where log lines go. Default stdout. */
  stream?: NodeJS.WritableStream;
}

export interface ApiOptions {
  /** A Redis URL, or the configuration's `redis` section. */
  redis: RedisConfig | string;
  /** Hosts and caches whose queues the board shows and /metrics measures (queues found in Redis are added). */
  hosts?: HostQueues[];
  board: BoardOptions;
  /**
   * The board's credentials also guard /v1 (which writes files on the hosts). Default true. Without credentials
   * (loopback only), /v1 answers loopback clients only, like the board.
   */
  protectApi?: boolean;
  /** The address the server will listen on: checked when the board has no credentials. */
  bind?: string;
  /**
   * How long POST /v1/fetch (wait) and the clean-ups wait by default, ms; 0 = as long as it takes.
   * Default DEFAULT_WAIT_TIMEOUT_MS (30 min).
   */
  waitTimeoutMs?: number;
  /** How often queues of other hosts are looked for in Redis, ms. Default 30 s; 0 = only at start. */
  discoverIntervalMs?: number;
  /** Logging of requests (never bodies, never credentials); false = none. Default: info to stdout. */
  logger?: false | ApiLoggerOptions;
  /** How long buildApi waits for Redis before serving anyway (/readyz says 503 meanwhile), ms. Default 3000. */
  connectWaitMs?: number;
  /** Process metrics (CPU, memory, event loop) in /metrics. Default true. */
  defaultMetrics?: boolean;
}

/**
 * The default bound of a waiting request: long enough for a large image's download and conversion, short enough
 * that a caller whose job hangs gets QUEUE_TIMEOUT (and the job id to read later) rather than waiting forever. A
 * caller whose job lost its last worker gets NO_WORKER much sooner (see ImageCacheClient).
 */
export const DEFAULT_WAIT_TIMEOUT_MS = 30 * 60_000;

/**
 * Longest route parameter: a job id is `<queue>~<uuid>`, and a queue name may hold a cache and a host name of 253
 * characters each. Fastify's default (100) cut ids of hosts with long names off (414).
 */
const MAX_PARAM_LENGTH = 1024;

/** Methods that change nothing: the only ones a read-only API answers. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** Keys of anything logged that may hold a secret: pino replaces them with ***. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body',
  'body',
  ...SECRET_LOG_PATHS,
  'href',
  '*.href',
];

/**
 * The HTTP API of the distributed mode (fastify): /v1 routes that enqueue and read jobs through an
 * ImageCacheClient, Bull Board at /board, /metrics, /healthz and /readyz. Refuses to build without board
 * credentials unless `board.allowNoAuthOnLoopback` is set (and `bind`, when given, is a loopback address).
 */
export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const { board } = opts;
  const auth = boardAuth(board, opts.bind);
  const readOnly = board.readOnly ?? false;
  const protectApi = opts.protectApi ?? true;
  const waitTimeoutMs = opts.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;

  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : {
            level: opts.logger?.level ?? 'info',
            ...(opts.logger?.stream ? { stream: opts.logger.stream } : {}),
            redact: { paths: REDACT_PATHS, censor: '***' },
            serializers: {
              // Method and path only: no headers (Authorization), no query string, never a body.
              req: (req: { method: string; url: string; ip?: string }) => ({
                method: req.method,
                url: req.url.split('?')[0],
                remoteAddress: req.ip,
              }),
            },
          },
    // Bodies are small JSON documents; an image never travels through the API.
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors of the router itself (a parameter too long: 414; a malformed %-escape: 400) in our shape too.
    frameworkErrors: (err, _request, reply: FastifyReply) => {
      const status = err.statusCode ?? 400;
      const message =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`
          : err.code === 'FST_ERR_BAD_URL'
            ? 'the URL is not valid (a malformed %-escape)'
            : err.message;
      return sendApiError(reply, 'invalidRequest', message, undefined, status);
    },
  });

  const prefix = prefixOf(opts.redis);
  const connection: RedisClient = connectRedis(opts.redis, 'producer');
  const client = new ImageCacheClient({ redis: opts.redis, timeoutMs: waitTimeoutMs });
  const queues = new QueueDirectory(connection, prefix);
  const fleet = new FleetDirectory(connection, prefix);
  queues.add(configuredQueues(opts.hosts ?? []));
  const ping = () => withTimeout(connection.ping(), 2000);
  const liveness = new WorkerLiveness(new WorkerRegistry(connection, prefix), opts.hosts ?? []);
  const metrics = createApiMetrics(queues, { ping, defaultMetrics: opts.defaultMetrics, liveness });

  let discoverTimer: NodeJS.Timeout | undefined;
  if (board.discover ?? true) {
    const discover = () =>
      void queues
        .discover()
        .catch((err) => app.log.debug({ err: errorMessage(err) }, 'queue discovery failed'));
    connection.on('ready', discover); // at start, and after each reconnection
    if ((opts.discoverIntervalMs ?? 30_000) > 0) {
      discoverTimer = setInterval(discover, opts.discoverIntervalMs ?? 30_000);
      discoverTimer.unref();
    }
  }
  // Serve once Redis answers, or gives an error, or after a while: readiness reports it, the API is up anyway.
  await whenSettled(connection, opts.connectWaitMs ?? 3000);

  app.addHook('onClose', async () => {
    if (discoverTimer) clearInterval(discoverTimer);
    await client.close();
    await queues.close();
    connection.disconnect();
  });

  const check = guard(auth);
  app.addHook('onRequest', async (request, reply) => {
    // Judged on the route the router matched (and the decoded path): the raw URL can spell a path with
    // %-escapes that the router decodes, and must not slip past the guard that way.
    const paths = [request.routeOptions.url ?? '', routedPath(request.url)];
    const onBoard = paths.some((p) => p === BOARD_PATH || p.startsWith(`${BOARD_PATH}/`));
    const onApi = paths.some((p) => p === '/v1' || p.startsWith('/v1/'));
    // Without credentials /v1 is guarded whatever protectApi says: loopback clients naming a loopback Host.
    if (onBoard || (onApi && (protectApi || !auth))) {
      await check(request, reply);
      if (reply.sent) return reply;
    }
    if (readOnly && !SAFE_METHODS.has(request.method)) {
      return sendApiError(reply, 'forbidden', `read-only: ${request.method} is refused (GET only)`);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
  });

  app.setErrorHandler((err: FastifyError | ImageCacheError, request, reply) => {
    if (err instanceof ImageCacheError) {
      const { status, body } = engineError(err);
      return reply.code(status).send(body);
    }
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      // Body not JSON, too large, of another media type…: fastify's message says which.
      return sendApiError(reply, 'invalidRequest', err.message, undefined, status);
    }
    request.log.error({ err: errorMessage(err) }, 'request failed');
    return reply.code(ImageCacheError.httpStatus).send(apiError(ImageCacheError.code, 'internal error'));
  });
  app.setNotFoundHandler((request, reply) =>
    sendApiError(reply, 'notFound', `no route ${request.method} ${request.url.split('?')[0]}`),
  );

  // ----------------------------------------------------------------------------------------------------------
  // /v1

  app.post('/v1/fetch', async (request, reply) => {
    const body = parseBody(FetchBodySchema, request.body);
    const { wait: _wait, timeoutMs: _timeoutMs, ...requested } = body;
    const { queue, jobId } = await client.enqueueFetch(requested);
    reply.header('x-imagecache-job-id', jobId);
    if (!body.wait) {
      return reply.code(202).header('location', jobPath(jobId)).send({ jobId, queue, state: 'waiting' });
    }
    // Not cancelled when the HTTP client goes away: the job goes on, GET /v1/jobs/:id reads it.
    return settle(reply, jobId, client.waitFor(jobId, { timeoutMs: body.timeoutMs ?? waitTimeoutMs }));
  });

  app.get('/v1/jobs/:id', async (request, reply) => {
    const { id } = parseBody(JobIdParamsSchema, request.params);
    return (await client.getJob(id)) ?? jobNotFound(reply, id);
  });

  app.delete('/v1/jobs/:id', async (request, reply) => {
    const { id } = parseBody(JobIdParamsSchema, request.params);
    const job = await client.getJob(id);
    if (!job) {
      // Lost with a Redis master in a failover, a job is added again by its waiting caller unless it was cancelled:
      // the cancel is recorded all the same, so the job doesn't come back (packages/queue, cancel-record.ts).
      await client.cancel(id, 'cancelled through the API');
      return jobNotFound(reply, id);
    }
    if (job.state === 'completed' || job.state === 'failed') {
      return sendApiError(reply, 'jobFinished', `job ${id} is ${job.state} already`, { state: job.state });
    }
    await client.cancel(id, 'cancelled through the API');
    return reply.code(202).send({ jobId: id, state: job.state, cancelled: true });
  });

  // Which hosts of the fleet hold which image (issue #12): the directory as it is in Redis.
  app.get('/v1/fleet', async () =>
    withTimeout(fleet.view(), 5000).catch((err: unknown) => {
      throw queueUnavailable(err, 'the fleet directory');
    }),
  );

  app.post('/v1/clean-up', async (request, reply) => {
    const body = parseBody(CleanUpBodySchema, request.body);
    return settle(
      reply,
      undefined,
      client.cleanUp({
        host: body.host,
        cache: body.cache,
        amount: body.amount,
        timeoutMs: body.timeoutMs ?? waitTimeoutMs,
      }),
    );
  });

  app.post('/v1/clean-up-caches', async (request, reply) => {
    const body = parseBody(CleanUpCachesBodySchema, request.body);
    return settle(
      reply,
      undefined,
      client.cleanUpCaches({
        host: body.host,
        directory: body.directory,
        images: body.images,
        timeoutMs: body.timeoutMs ?? waitTimeoutMs,
      }),
    );
  });

  // ----------------------------------------------------------------------------------------------------------
  // operations

  app.get('/healthz', async () => ({ status: 'ok' }));

  // Ready when Redis answers and every configured cache has a live worker (workers announce themselves with a
  // heartbeat: a dead one is counted out within its TTL).
  app.get('/readyz', async (_request, reply) => {
    let unserved: { host: string; cache: string }[];
    try {
      await ping();
      unserved = await withTimeout(liveness.unserved(), 2000);
    } catch (err) {
      return reply
        .code(503)
        .send({ status: 'unavailable', checks: { redis: `unreachable: ${errorMessage(err)}` } });
    }
    if (unserved.length === 0) return { status: 'ok', checks: { redis: 'ok', workers: 'ok' } };
    const names = unserved.map((u) => `${u.cache}@${u.host}`).join(', ');
    return reply.code(503).send({
      status: 'unavailable',
      checks: { redis: 'ok', workers: `no live worker for ${names}` },
      unserved,
    });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });

  await mountBoard(app, queues, { readOnly });
  return app;
}

/** The board's basic auth, or none when running without is allowed; throws otherwise. */
function boardAuth(board: BoardOptions, bind: string | undefined): BasicAuth | undefined {
  const { username, password } = board;
  if (username !== undefined || password !== undefined) {
    if (!username || !password)
      throw new UsageError('the board needs both a username and a password (or neither, on loopback)');
    return new BasicAuth(username, password);
  }
  if (!board.allowNoAuthOnLoopback) {
    throw new ConfigError(
      'the board needs credentials (IMAGECACHE_BOARD_USERNAME and IMAGECACHE_BOARD_PASSWORD); ' +
        'without them the API only starts bound to a loopback address with --no-board-auth',
    );
  }
  if (bind !== undefined && !isLoopback(bind)) {
    throw new ConfigError(
      `the board has no credentials: the API may listen on a loopback address only, not ${bind}`,
    );
  }
  return undefined;
}

function parseBody<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw new UsageError(describeIssues(r.error));
  return r.data;
}

/** 200 with the result, or the engine's error with its status (and the job id, to read it later). */
async function settle(
  reply: FastifyReply,
  jobId: string | undefined,
  pending: Promise<unknown>,
): Promise<FastifyReply> {
  try {
    return reply.code(200).send(await pending);
  } catch (err) {
    const { status, body } = engineError(
      err,
      jobId ?? ((err as ImageCacheError).details?.jobId as string | undefined),
    );
    return reply.code(status).send(body);
  }
}

function jobPath(jobId: string): string {
  return `/v1/jobs/${encodeURIComponent(jobId)}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function jobNotFound(reply: FastifyReply, id: string) {
  return sendApiError(reply, 'jobNotFound', `no job ${id} (unknown, or removed by age)`);
}
