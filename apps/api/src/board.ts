import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendApiError } from './errors';
import { parseQueueName, type QueueDirectory } from './queues';

export const BOARD_PATH = '/board';

export interface BoardOptions {
  /** Basic-auth user of the board (and of /v1 unless `protectApi` is false). */
  username?: string;
  password?: string;
  /** The board shows but changes nothing (no retry, clean, pause, add…): Bull Board's readOnlyMode. */
  readOnly?: boolean;
  /** Serve the board without credentials; only allowed when the API listens on a loopback address. */
  allowNoAuthOnLoopback?: boolean;
  /** Also list the queues found in Redis under the prefix (other hosts' workers). Default true. */
  discover?: boolean;
}

/** Loopback addresses: 127.0.0.0/8, ::1, their IPv4-mapped forms, and `localhost`. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  return a === 'localhost' || a === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/**
 * Whether a Host header names this machine: a loopback name or address, with or without a port. A page of
 * another origin that rebinds its DNS name to 127.0.0.1 still sends its own name, and is refused.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  return isLoopback(name);
}

/** Checks basic-auth headers against one user, in time independent of where the strings differ. */
export class BasicAuth {
  private readonly expected: Buffer;

  constructor(username: string, password: string) {
    this.expected = digest(`${username}:${password}`);
  }

  check(header: string | undefined): boolean {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
    if (!m) return false;
    return timingSafeEqual(digest(Buffer.from(m[1]!, 'base64').toString('utf8')), this.expected);
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** 401 with the challenge that makes a browser ask for the board's credentials. */
export function challenge(reply: FastifyReply): FastifyReply {
  reply.header('www-authenticate', 'Basic realm="imagecache", charset="UTF-8"');
  return sendApiError(reply, 'unauthorized', 'credentials required (HTTP basic auth)');
}

/**
 * Mounts Bull Board at /board with a BullMQAdapter for every queue of the directory (queues found later are
 * added as they appear). The caller guards the path (basic auth, loopback).
 */
export async function mountBoard(
  app: FastifyInstance,
  queues: QueueDirectory,
  opts: { readOnly: boolean },
): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  const adapters = () =>
    queues.list().map((q) => {
      const info = parseQueueName(q.name);
      return new BullMQAdapter(q, {
        readOnlyMode: opts.readOnly,
        allowRetries: !opts.readOnly,
        description: info
          ? `${info.kind} jobs of ${info.cache ? `cache ${info.cache} on ` : ''}host ${info.host}`
          : '',
      });
    });
  const board = createBullBoard({
    queues: adapters(),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'imagecache' } },
  });
  queues.onChange(() => board.replaceQueues(adapters()));
  await app.register(serverAdapter.registerPlugin(), { prefix: BOARD_PATH });
}

/**
 * The guard of the board and /v1: basic auth, or, when there is none, loopback clients only that name a
 * loopback Host (DNS rebinding).
 */
export function guard(auth: BasicAuth | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (auth) {
      if (!auth.check(request.headers.authorization)) {
        await challenge(reply);
        return;
      }
    } else if (!isLoopback(request.socket.remoteAddress)) {
      // Served without auth: only to this machine, whatever address the server ended up listening on.
      await sendApiError(reply, 'forbidden', 'the board is served without auth to loopback clients only');
      return;
    } else if (!isLoopbackHost(request.headers.host)) {
      await sendApiError(
        reply,
        'forbidden',
        'served without auth: the Host header must name this machine (localhost, 127.0.0.1 or [::1])',
      );
    }
  };
}

/** The path of a request URL as the router sees it: without the query, %-escapes decoded. */
export function routedPath(url: string): string {
  const path = url.split('?')[0] ?? '';
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
