import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { ImageCache } from '@imagecache/core';
import { peerMasterUrl, peerTokenName, signPeerToken } from '@imagecache/peers';
import { randomFile, startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';

export const SECRET = 'a fleet secret of the test, long enough';

/** A host's master folder with masters published by the engine itself, fetched from a real origin. */
export interface PublishedHost {
  root: string;
  masterDir: string;
  cache: ImageCache;
  origin: ImageServer;
  /** Fetches `size` random bytes through the engine; returns the master's name and bytes. */
  publish(size: number): Promise<{ name: string; bytes: Buffer; masterPath: string }>;
  close(): Promise<void>;
}

export async function publishedHost(): Promise<PublishedHost> {
  const root = tmpDir('imagecache-peers-');
  const masterDir = path.join(root, 'instance');
  const cache = new ImageCache({ masterDir, forceRaw: false, validate: false, retryDelayMs: 10 });
  const origin = await startImageServer();
  let n = 0;
  return {
    root,
    masterDir,
    cache,
    origin,
    async publish(size) {
      const file = path.join(root, `origin-${++n}.img`);
      const bytes = randomFile(file, size);
      origin.route(`/img-${n}.img`, { file, ranges: true });
      const r = await cache.fetchImage(origin.url(`/img-${n}.img`), path.join(root, `dest-${n}`));
      return { name: path.basename(r.masterPath!), bytes, masterPath: r.masterPath! };
    },
    close: () => origin.close(),
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request with a raw path (nothing normalized), its whole answer read. */
export function request(
  base: string,
  rawPath: string,
  opts: { method?: string; headers?: Record<string, string>; ca?: Buffer } = {},
): Promise<Answer> {
  const url = new URL(base);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        host: url.hostname,
        port: url.port,
        path: rawPath,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
        ...(opts.ca && { ca: opts.ca }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The path of a master on the peer service, and a bearer header granting it. */
export function masterPath(cache: string, name: string): string {
  return new URL(peerMasterUrl('http://x', cache, name)).pathname;
}

export function bearer(cache: string, name: string, secret = SECRET, ttl = 60, now = Date.now()) {
  return { authorization: `Bearer ${signPeerToken(secret, peerTokenName(cache, name), ttl, now)}` };
}

export function sizeOf(file: string): number {
  return fs.statSync(file).size;
}
