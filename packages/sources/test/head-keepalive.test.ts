// HEADs (a warm cache hit is one) go through our own client: a kept connection per origin for the next HEAD,
// a new one when the server closed it meanwhile, none kept when the server says close.
import * as http from 'node:http';
import type * as net from 'node:net';
import { ImageDownloadFailed } from '@imagecache/errors';
import { closeHttpConnections, HttpSource } from '@imagecache/sources';

interface Counted {
  url: string;
  connections(): number;
  heads(): number;
  server: http.Server;
  close(): Promise<void>;
}

async function server(opts: { close?: boolean; dropIdleAfterMs?: number } = {}): Promise<Counted> {
  let connections = 0;
  let heads = 0;
  const sockets = new Set<net.Socket>();
  const srv = http.createServer((req, res) => {
    heads++;
    res.setHeader('content-length', '1234');
    res.setHeader('last-modified', new Date(0).toUTCString());
    if (opts.close) res.setHeader('connection', 'close');
    res.end();
    if (opts.dropIdleAfterMs !== undefined) {
      const s = req.socket;
      res.on('finish', () => setTimeout(() => s.destroy(), opts.dropIdleAfterMs));
    }
  });
  srv.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/image.img`,
    connections: () => connections,
    heads: () => heads,
    server: srv,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

afterEach(() => closeHttpConnections());

describe('HEAD on our own client', () => {
  it('reuses one kept connection for successive HEADs to an origin', async () => {
    const s = await server();
    try {
      for (let i = 0; i < 5; i++) {
        await expect(new HttpSource(s.url).show()).resolves.toMatchObject({ size: 1234 });
      }
      expect(s.heads()).toBe(5);
      expect(s.connections()).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('sends the HEAD again on a new connection when the kept one was closed by the server', async () => {
    const s = await server({ dropIdleAfterMs: 5 });
    try {
      await new HttpSource(s.url).show();
      await new Promise((r) => setTimeout(r, 50)); // the server has closed it; our side may not know yet
      await expect(new HttpSource(s.url).show()).resolves.toMatchObject({ size: 1234 });
      expect(s.heads()).toBe(2);
      expect(s.connections()).toBe(2);
    } finally {
      await s.close();
    }
  });

  it('keeps no connection the server says it closes', async () => {
    const s = await server({ close: true });
    try {
      await new HttpSource(s.url).show();
      await new HttpSource(s.url).show();
      expect(s.connections()).toBe(2);
    } finally {
      await s.close();
    }
  });

  it('times out a HEAD nobody answers, with the inactivity timeout', async () => {
    const s = await server();
    s.server.removeAllListeners('request'); // accepts, never answers
    try {
      const err = await new HttpSource(s.url, { http: { inactivityTimeoutMs: 200 } })
        .show()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageDownloadFailed);
      expect((err as Error).message).toMatch(/no answer for 200 ms/);
    } finally {
      await s.close();
    }
  });
});
