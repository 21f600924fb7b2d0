import type { FastifyInstance } from 'fastify';
import type { HostConfig } from '@imagecache/config';
import { ConfigError } from '@imagecache/errors';
import { buildApi, type ApiOptions } from './app';
import type { BoardOptions } from './board';
import type { HostQueues } from './queues';

export interface StartApiOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  board?: BoardOptions;
  /** More hosts whose queues the board shows (the configuration's own host is always in). */
  hosts?: HostQueues[];
  logger?: ApiOptions['logger'];
  waitTimeoutMs?: number;
  protectApi?: boolean;
}

export interface RunningApi {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Builds the API for a host configuration (its `redis`, its host and caches) and listens. */
export async function startApi(config: HostConfig, opts: StartApiOptions = {}): Promise<RunningApi> {
  if (!config.redis)
    throw new ConfigError('the configuration has no `redis` section (or IMAGECACHE_REDIS_URL)');
  const bind = opts.host ?? '127.0.0.1';
  const app = await buildApi({
    redis: config.redis,
    hosts: [{ host: config.host, caches: config.caches.map((c) => c.name) }, ...(opts.hosts ?? [])],
    board: opts.board ?? {},
    bind,
    logger: opts.logger,
    waitTimeoutMs: opts.waitTimeoutMs,
    protectApi: opts.protectApi,
  });
  try {
    await app.listen({ port: opts.port ?? 8080, host: bind });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 8080);
  const shown = bind.includes(':') ? `[${bind}]` : bind;
  return { app, url: `http://${shown}:${port}`, port, close: () => app.close() };
}
