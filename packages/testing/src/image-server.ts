import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

/** How the server answers one path. Every field is optional; the default is 200 with the body. */
export interface Route {
  /** The image bytes, or a file to stream them from. */
  body?: Buffer | string;
  file?: string;
  status?: number;
  /** Status for HEAD only (e.g. 405), the GET still answers. */
  headStatus?: number;
  headers?: Record<string, string>;
  lastModified?: Date | string;
  etag?: string;
  /** Omit Content-Length (chunked) on GET, and on HEAD. */
  noContentLength?: boolean;
  /** Send this many bytes of the body, then reset the connection. */
  truncateAt?: number;
  /** Send this many bytes, then stop sending but keep the connection open. */
  stallAt?: number;
  /** Announce this Content-Length whatever the body's length (for short or long bodies). */
  contentLength?: number;
  /** Answer 302 to this location. */
  redirectTo?: string;
  /** Honour Range / If-Range requests (206). */
  ranges?: boolean;
  /** Delay before answering, ms. */
  delayMs?: number;
  /** Delay between a GET's headers (sent at once) and its body, ms. */
  bodyDelayMs?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface ImageServer {
  readonly port: number;
  url(path: string): string;
  route(path: string, route: Route): void;
  readonly requests: LoggedRequest[];
  count(method: string, path?: string): number;
  close(): Promise<void>;
}

/** Starts a real HTTP/1.1 server on 127.0.0.1:0 for tests and benchmarks. */
export async function startImageServer(): Promise<ImageServer> {
  const routes = new Map<string, Route>();
  const requests: LoggedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers });
    const route = routes.get(req.url ?? '/') ?? routes.get(path);
    const answer = () => serve(req, res, route);
    if (route?.delayMs) setTimeout(answer, route.delayMs);
    else answer();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    route: (p, r) => void routes.set(p, r),
    requests,
    count: (method, p) =>
      requests.filter((r) => r.method === method && (p === undefined || r.path === p)).length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(req: http.IncomingMessage, res: http.ServerResponse, route: Route | undefined): void {
  if (!route) {
    res.writeHead(404).end('not found');
    return;
  }
  if (route.redirectTo) {
    res.writeHead(302, { location: route.redirectTo }).end();
    return;
  }
  const isHead = req.method === 'HEAD';
  const status = (isHead ? route.headStatus : undefined) ?? route.status ?? 200;
  const size = route.file ? fs.statSync(route.file).size : Buffer.byteLength(route.body ?? '');
  const headers: Record<string, string> = { ...route.headers };
  if (route.lastModified) {
    headers['last-modified'] =
      typeof route.lastModified === 'string' ? route.lastModified : route.lastModified.toUTCString();
  }
  if (route.etag) headers.etag = route.etag;
  if (route.ranges) headers['accept-ranges'] = 'bytes';

  let start = 0;
  let end = size - 1;
  let code = status;
  const range = req.headers.range;
  if (route.ranges && range && status === 200 && ifRangeMatches(req, route, headers)) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(Number(m[2]), end);
      code = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
  }
  const length = Math.max(0, end - start + 1);
  if (!route.noContentLength) headers['content-length'] = String(route.contentLength ?? length);
  res.writeHead(code, headers);
  if (isHead || status >= 300) {
    res.end(status >= 300 && !isHead ? 'error' : undefined);
    return;
  }
  if (route.bodyDelayMs) {
    res.flushHeaders();
    setTimeout(() => sendBody(res, route, start, end), route.bodyDelayMs);
  } else sendBody(res, route, start, end);
}

function sendBody(res: http.ServerResponse, route: Route, start: number, end: number): void {
  if (res.destroyed) return;
  const stream = route.file
    ? fs.createReadStream(route.file, { start, end, highWaterMark: 1 << 20 })
    : Readable.from([Buffer.from(route.body ?? '').subarray(start, end + 1)]);
  const cut = route.truncateAt ?? route.stallAt;
  if (cut === undefined) {
    stream.pipe(res);
    return;
  }
  let sent = 0;
  stream.on('data', (chunk: Buffer) => {
    const room = cut - sent;
    if (room <= 0) return;
    const part = chunk.subarray(0, room);
    sent += part.length;
    res.write(part);
    if (sent >= cut) {
      stream.destroy();
      if (route.truncateAt !== undefined) setTimeout(() => res.socket?.destroy(), 20);
    }
  });
}

function ifRangeMatches(req: http.IncomingMessage, route: Route, headers: Record<string, string>): boolean {
  const ifRange = req.headers['if-range'];
  if (!ifRange) return true;
  return ifRange === route.etag || ifRange === headers['last-modified'];
}
