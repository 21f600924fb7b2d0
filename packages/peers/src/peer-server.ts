import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { CacheFolder, silentLogger, type Logger } from '@imagecache/core';
import { PeerTokenInvalid, UsageError } from '@imagecache/errors';
import { requestedRange } from './byte-range';
import { sendFile } from './send-file';
import { parsePeerPath, peerTokenName } from './peer-paths';
import { verifyPeerToken } from './peer-token';
import { openPublishedMaster, type OpenedMaster } from './published-master';
import { Throttle } from './throttle';
import { TokenBucket } from './token-bucket';

export const DEFAULT_UPLOAD_CONCURRENCY = 4;
/** Seconds a client refused for want of an upload slot is told to wait. */
export const BUSY_RETRY_AFTER_SECONDS = 1;
/** Read size of an upload: the stream holds about this much in memory, whatever the file's size. */
const READ_CHUNK = 256 * 1024;
/** A connection with nothing sent or received this long is closed (a taker that stopped reading frees its slot). */
export const DEFAULT_PEER_IDLE_TIMEOUT_MS = 60_000;

export interface PeerServerOptions {
  /** The master folders served, by cache name (the host's caches). */
  caches: readonly { name: string; masterDir: string }[];
  /** The fleet's shared secret: tokens are checked against it. Never logged. */
  secret: string | Buffer;
  /** 0: any free port (start() says which). */
  port: number;
  /** Default 127.0.0.1. */
  bind?: string;
  /** GETs served at once; one more is answered 503 with Retry-After. Default 4. */
  uploadConcurrency?: number;
  /** Cap on the bytes per second sent by all uploads together; none when undefined. */
  bytesPerSec?: number;
  /** Serve https with this PEM certificate (chain) and key. */
  tls?: { certFile: string; keyFile: string };
  /** A connection idle this long (nothing sent or received) is closed. Default 60 s. */
  idleTimeoutMs?: number;
  logger?: Logger;
  /** Called once per request when its response is over (metrics). */
  onRequest?: (event: PeerRequestEvent) => void;
}

/**
 * How a request ended: `served` (every byte asked for was sent, or a HEAD answered), `partial` (the client went
 * away), `unauthorized` (token), `refused` (no such master, or not one that may be served), `busy` (no upload
 * slot), `failed` (a read error).
 */
export type PeerRequestResult = 'served' | 'partial' | 'unauthorized' | 'refused' | 'busy' | 'failed';

export interface PeerRequestEvent {
  method: string;
  result: PeerRequestResult;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  cache?: string;
}

/**
 * Serves a host's published masters read-only to the other hosts of its fleet (HEAD and GET with Range, at
 * `/v1/masters/<cache>/<master>`), each request with a token for that one name. A plain node:http server: two
 * routes, no body to parse, and the stream is piped straight from the opened descriptor to the socket.
 */
export class PeerServer {
  private server?: http.Server;
  private active = 0;
  private readonly folders = new Map<string, CacheFolder>();
  private readonly bucket?: TokenBucket;
  private readonly limit: number;
  private readonly logger: Logger;
  private readonly readChunk: number;

  constructor(private readonly options: PeerServerOptions) {
    if (options.secret.length === 0) throw new UsageError('the peer service needs a secret (peers.secret)');
    this.limit = options.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY;
    if (!Number.isInteger(this.limit) || this.limit < 1)
      throw new UsageError(`uploadConcurrency must be an integer ≥ 1, got ${this.limit}`);
    if (options.bytesPerSec !== undefined) this.bucket = new TokenBucket(options.bytesPerSec);
    // Under a low cap, smaller reads: a chunk never waits for its bytes longer than about a quarter second.
    this.readChunk = this.bucket
      ? Math.min(READ_CHUNK, Math.max(16 * 1024, Math.floor(this.bucket.bytesPerSec / 4)))
      : READ_CHUNK;
    for (const c of options.caches) this.folders.set(c.name, new CacheFolder(c.masterDir));
    this.logger = options.logger ?? silentLogger;
  }

  /** Uploads (GETs) running now. */
  get activeUploads(): number {
    return this.active;
  }

  /** Milliseconds the bandwidth cap has held uploads back, in all (0 without a cap). */
  get throttledMs(): number {
    return this.bucket?.waitedMs ?? 0;
  }

  async start(): Promise<{ port: number }> {
    const { tls, port, bind = '127.0.0.1' } = this.options;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const server = tls
      ? https.createServer(
          {
            cert: readPem(tls.certFile, 'certFile'),
            key: readPem(tls.keyFile, 'keyFile'),
            minVersion: 'TLSv1.2',
          },
          handler,
        )
      : http.createServer(handler);
    server.setTimeout(this.options.idleTimeoutMs ?? DEFAULT_PEER_IDLE_TIMEOUT_MS, (socket) =>
      socket.destroy(),
    );
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) =>
        reject(
          new UsageError(`the peer service can't listen on ${bind}:${port}: ${err.code ?? err.message}`, {
            cause: err,
          }),
        );
      server.once('error', failed);
      server.listen(port, bind, () => {
        server.off('error', failed);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.warn({ err: err.message }, 'peer service error'));
    this.server = server;
    const actual = (server.address() as AddressInfo).port;
    this.logger.info(
      {
        bind,
        port: actual,
        tls: tls !== undefined,
        caches: [...this.folders.keys()],
        uploadConcurrency: this.limit,
      },
      'peer service listening',
    );
    return { port: actual };
  }

  /** Stops listening and cuts running uploads (their takers resume elsewhere). */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? '';
    const event: PeerRequestEvent = { method, result: 'refused', status: 0, bytes: 0 };
    // A streamed body is reported when its pipeline ends (its outcome known then); anything else on close.
    res.once('close', () => {
      if (!streaming.has(res)) this.report(res, event);
    });
    const refuse = (status: number, reason: string, headers: http.OutgoingHttpHeaders = {}) => {
      event.result = status === 401 ? 'unauthorized' : status === 503 ? 'busy' : 'refused';
      this.logger.info(
        { method, cache: event.cache, status, reason, client: req.socket.remoteAddress },
        'peer request refused',
      );
      res.writeHead(status, { ...headers, 'x-imagecache-reason': reason, 'content-length': 0 }).end();
    };
    if (method !== 'GET' && method !== 'HEAD') return refuse(405, 'method', { allow: 'GET, HEAD' });
    const target = parsePeerPath(req.url ?? '');
    if (!target) return refuse(404, 'not-a-master-path');
    try {
      verifyPeerToken(
        this.options.secret,
        bearerOf(req.headers.authorization),
        peerTokenName(target.cache, target.master),
      );
    } catch (err) {
      const reason = err instanceof PeerTokenInvalid ? String(err.details.reason) : 'token';
      return refuse(401, `token-${reason}`, { 'www-authenticate': 'Bearer' });
    }
    const folder = this.folders.get(target.cache);
    if (!folder) return refuse(404, 'unknown-cache');
    event.cache = target.cache;
    if (method === 'GET') {
      if (this.active >= this.limit)
        return refuse(503, 'busy', { 'retry-after': String(BUSY_RETRY_AFTER_SECONDS) });
      // Taken before the first await, so concurrent requests can't all pass the check.
      this.active++;
      res.once('close', () => this.active--);
    }
    let opened;
    try {
      opened = await openPublishedMaster(folder, target.master);
    } catch (err) {
      this.logger.warn(
        { cache: target.cache, err: (err as Error).message },
        'peer service: master unreadable',
      );
      return refuse(404, 'unreadable');
    }
    if (!opened.ok) return refuse(404, opened.reason);
    if (res.destroyed) {
      await opened.master.handle.close();
      return;
    }
    this.send(req, res, opened.master, event);
  }

  private send(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    master: OpenedMaster,
    event: PeerRequestEvent,
  ): void {
    const { handle, stat, etag, sha256 } = master;
    const size = stat.size;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag,
      ...(sha256 !== undefined && { 'x-imagecache-sha256': sha256 }),
    };
    const range =
      req.method === 'GET'
        ? requestedRange(req.headers.range, header(req.headers['if-range']), etag, size)
        : { kind: 'full' as const };
    if (range.kind === 'unsatisfiable') {
      void handle.close();
      event.result = 'refused';
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}`, 'content-length': 0 }).end();
      return;
    }
    const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, size - 1];
    const length = end - start + 1;
    if (range.kind === 'partial') {
      res.writeHead(206, {
        ...headers,
        'content-range': `bytes ${start}-${end}/${size}`,
        'content-length': length,
      });
    } else {
      res.writeHead(200, { ...headers, 'content-length': size });
    }
    if (req.method === 'HEAD' || length === 0) {
      void handle.close();
      event.result = 'served';
      res.end();
      return;
    }
    streaming.add(res);
    const done = (err: NodeJS.ErrnoException | null) => {
      this.report(res, event, err);
    };
    if (!this.bucket) {
      const count = (n: number) => void (event.bytes += n);
      sendFile(handle, start, end, res, count)
        .finally(() => handle.close().catch(() => undefined))
        .then(
          () => done(null),
          (err: NodeJS.ErrnoException) => {
            res.destroy();
            done(err);
          },
        );
      return;
    }
    const file = handle.createReadStream({ start, end, highWaterMark: this.readChunk, autoClose: true });
    file.on('data', (chunk: string | Buffer) => {
      event.bytes += chunk.length;
    });
    pipeline(file, new Throttle(this.bucket), res, done);
  }

  private report(
    res: http.ServerResponse,
    event: PeerRequestEvent,
    err?: NodeJS.ErrnoException | null,
  ): void {
    event.status = res.statusCode;
    if (streaming.has(res)) {
      if (!err) event.result = 'served';
      else if (err.code === 'ERR_STREAM_PREMATURE_CLOSE') event.result = 'partial';
      else {
        event.result = 'failed';
        this.logger.warn({ cache: event.cache, err: err.message }, 'peer upload failed');
      }
    }
    this.options.onRequest?.(event);
  }
}

/** Responses whose body is being streamed from a master. */
const streaming = new WeakSet<http.ServerResponse>();

/** A PEM file of peers.tls, or a UsageError naming the key (never the file's content). */
function readPem(file: string, key: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`peers.tls.${key} ${file} can't be read: ${code}`, { cause: err });
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The token of an `Authorization: Bearer <token>` header. */
function bearerOf(authorization: string | undefined): string | undefined {
  const m = /^Bearer +(\S+)\s*$/i.exec(authorization ?? '');
  return m?.[1];
}
