// Servers that end the connection right after the body (HTTP/1.0, `Connection: close`) while the reader is
// behind: under undici 7 a paused parser meeting that FIN threw from a socket handler and ended the process
// (nodejs/undici#5360). Each case runs many times with a slow reader; every body must arrive whole and right,
// and a body cut short must be an error, never a success.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ImageDownloadFailed } from '@imagecache/errors';
import { HttpSource, isBlockReadable, type ByteSink } from '@imagecache/sources';
import { startPythonHttpServer, tmpDir } from '@imagecache/testing';

const IMAGE = randomBytes((1 << 20) + 12345);
const SHA = createHash('sha256').update(IMAGE).digest('hex');

type Behaviour = 'close' | 'http10' | 'chunked' | 'short' | 'chunked-short';

/** A raw server: reads one request, answers it as `behaviour` says, then closes (FIN) its side. */
async function rawServer(behaviour: Behaviour): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.once('data', () => {
      const cut = IMAGE.subarray(0, IMAGE.length >> 1);
      switch (behaviour) {
        case 'close':
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${IMAGE.length}\r\nConnection: close\r\n\r\n`);
          sock.end(IMAGE);
          break;
        case 'http10':
          sock.write('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
          sock.end(IMAGE);
          break;
        case 'chunked': {
          sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
          for (let off = 0; off < IMAGE.length; off += 100_000) {
            const part = IMAGE.subarray(off, off + 100_000);
            sock.write(`${part.length.toString(16)};ext=1\r\n`);
            sock.write(part);
            sock.write('\r\n');
          }
          sock.end('0\r\nX-Trailer: yes\r\n\r\n');
          break;
        }
        case 'short':
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${IMAGE.length}\r\nConnection: close\r\n\r\n`);
          sock.end(cut);
          break;
        case 'chunked-short':
          sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
          sock.end(Buffer.concat([Buffer.from(`${IMAGE.length.toString(16)}\r\n`), cut]));
          break;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/image.img`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Reads a body slowly as a Readable: a pause after every chunk, so the socket is paused when the FIN comes. */
async function readSlowly(href: string): Promise<{ sha: string; bytes: number }> {
  const body = await new HttpSource(href).open();
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of body.stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
    await new Promise((r) => setImmediate(r));
  }
  return { sha: hash.digest('hex'), bytes };
}

/** Calls `wake` from a timer once `ready()` (as the engine's blocks do from their write's continuation). */
function wakeWhen(ready: () => boolean, wake: () => void): void {
  const t = setInterval(() => {
    if (ready()) {
      clearInterval(t);
      wake();
    }
  }, 1);
}

/** Takes a body through a ByteSink with small regions that free up only later (the engine's blocks). */
async function sinkSlowly(href: string): Promise<{ sha: string; bytes: number }> {
  const body = await new HttpSource(href).open();
  if (!isBlockReadable(body.stream)) throw new Error('expected a block-readable body');
  const hash = createHash('sha256');
  const block = Buffer.alloc(32 << 10);
  let fill = 0;
  let bytes = 0;
  let busy = false;
  const sink: ByteSink = {
    region: () => (busy ? undefined : block.subarray(fill)),
    commit(n) {
      fill += n;
      bytes += n;
      if (fill === block.length) {
        hash.update(block);
        fill = 0;
        busy = true;
        setTimeout(() => (busy = false), 1);
      }
    },
    waitForRoom: (wake) => wakeWhen(() => !busy, wake),
  };
  await body.stream.pipeTo(sink);
  hash.update(block.subarray(0, fill));
  return { sha: hash.digest('hex'), bytes };
}

describe('a server that closes the connection right after the body', () => {
  for (const behaviour of ['close', 'http10', 'chunked'] as const) {
    it(`${behaviour}: 50 slow reads and 50 slow sinks all complete with the right bytes`, async () => {
      const server = await rawServer(behaviour);
      try {
        for (let i = 0; i < 50; i++) {
          await expect(readSlowly(server.url)).resolves.toEqual({ sha: SHA, bytes: IMAGE.length });
          await expect(sinkSlowly(server.url)).resolves.toEqual({ sha: SHA, bytes: IMAGE.length });
        }
      } finally {
        await server.close();
      }
    }, 60_000);
  }

  it('a body cut short by a FIN before Content-Length is a retryable error, never a success', async () => {
    const server = await rawServer('short');
    try {
      for (const read of [readSlowly, sinkSlowly]) {
        const err = await read(server.url).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ImageDownloadFailed);
        expect((err as ImageDownloadFailed).retryable).toBe(true);
        expect((err as Error).message).toMatch(/connection closed after \d+ of 1060921 bytes/);
      }
    } finally {
      await server.close();
    }
  });

  it('a chunked body cut short by a FIN is an error', async () => {
    const server = await rawServer('chunked-short');
    try {
      for (const read of [readSlowly, sinkSlowly]) {
        const err = await read(server.url).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ImageDownloadFailed);
        expect((err as Error).message).toMatch(/inside a chunked body/);
      }
    } finally {
      await server.close();
    }
  });
});

describe('a sink that refuses bytes (a bound passed)', () => {
  it("ends the download with the sink's error, also when it throws from a wake-up", async () => {
    const server = await rawServer('close');
    try {
      for (const throwAt of [1, 3, 20]) {
        const body = await new HttpSource(server.url).open();
        if (!isBlockReadable(body.stream)) throw new Error('expected a block-readable body');
        const bound = new ImageDownloadFailed('past the bound', { retryable: false });
        const block = Buffer.alloc(32 << 10);
        let commits = 0;
        let busy = false;
        const sink: ByteSink = {
          region: () => (busy ? undefined : block),
          commit() {
            if (++commits === throwAt) throw bound;
            busy = true;
            setTimeout(() => (busy = false), 1);
          },
          waitForRoom: (wake) => wakeWhen(() => !busy, wake),
        };
        await expect(body.stream.pipeTo(sink)).rejects.toBe(bound);
      }
    } finally {
      await server.close();
    }
  });
});

describe('python3 -m http.server (HTTP/1.0: one connection per request, closed after the body)', () => {
  let python: { base: string; close(): void };
  let base: string;
  beforeAll(async () => {
    const dir = tmpDir('imagecache-pyhttp-');
    fs.writeFileSync(path.join(dir, 'image.img'), IMAGE);
    python = await startPythonHttpServer(dir);
    base = python.base;
  });
  afterAll(() => python.close());

  it('50 slow reads and 50 slow sinks complete with the right bytes', async () => {
    for (let i = 0; i < 50; i++) {
      await expect(readSlowly(`${base}/image.img`)).resolves.toEqual({ sha: SHA, bytes: IMAGE.length });
      await expect(sinkSlowly(`${base}/image.img`)).resolves.toEqual({ sha: SHA, bytes: IMAGE.length });
    }
  }, 60_000);
});
