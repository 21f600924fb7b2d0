import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { ImageCache, masterName, silentLogger, type Logger } from '@imagecache/core';
import { connectRedis, FleetDirectory, fleetImageKey, keys, type RedisClient } from '@imagecache/queue';
import { HttpSource } from '@imagecache/sources';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { RedisFleet } from '../src/redis-fleet';
import { SHARED_REDIS, uniquePrefix } from './harness';

/**
 * The fetch order of issue #12 in one process: four engines, each its own master folder and peer server (a
 * plain file server over the folder: what a peer serves is its master's bytes, whatever they are), sharing a
 * directory and single flight in Redis.
 */

const MiB = 1 << 20;

interface Peer {
  url: string;
  /** Requests the peer answered with bytes. */
  served: number;
  /** Closes every connection once this many bytes of a body were sent (a peer dying mid-transfer). */
  dieAfter?: number;
  close(): Promise<void>;
}

/** Serves `/v1/masters/<cache>/<name>` from `masterDir`, with Range. */
async function filePeer(masterDir: string): Promise<Peer> {
  const sockets = new Set<Socket>();
  const peer: Peer = { url: '', served: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/masters\/[^/]+\/([^/]+)$/.exec(req.url ?? '');
    const file = m ? path.join(masterDir, decodeURIComponent(m[1]!)) : undefined;
    const st = file ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
    if (!file || !st?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    const etag = `"${st.ino}-${st.size}-${st.mtimeMs}"`;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range && req.headers['if-range'] === etag ? Number(range[1]) : 0;
    const headers = { etag, 'content-length': String(st.size - start) };
    if (start > 0)
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${st.size - 1}/${st.size}` });
    else res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    peer.served++;
    let sent = 0;
    const stream = fs.createReadStream(file, { start, highWaterMark: 256 * 1024 });
    stream.on('data', (chunk) => {
      sent += chunk.length;
      if (peer.dieAfter !== undefined && sent >= peer.dieAfter) {
        stream.destroy();
        for (const s of sockets) s.destroy();
        return;
      }
      if (!res.write(chunk)) {
        stream.pause();
        res.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => res.end());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  peer.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return peer;
}

/** A logger that keeps what was logged (the skipped peers are reported there). */
function recordingLogger(lines: string[]): Logger {
  const log = (obj: object, msg?: string) => void lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  return { ...silentLogger, info: log, warn: log };
}

interface Host {
  name: string;
  cache: ImageCache;
  fleet: RedisFleet;
  peer: Peer;
  root: string;
  failures: string[];
  logs: string[];
}

let redis: RedisClient;
let prefix: string;
let origin: ImageServer;
const hosts: Host[] = [];

async function startHost(name: string): Promise<Host> {
  const root = tmpDir(`imagecache-fleet-${name}-`);
  const masterDir = path.join(root, 'instance');
  fs.mkdirSync(masterDir);
  fs.mkdirSync(path.join(root, 'dest'));
  const peer = await filePeer(masterDir);
  const failures: string[] = [];
  const logs: string[] = [];
  const logger = recordingLogger(logs);
  const fleet = new RedisFleet({
    redis,
    prefix,
    self: { host: name, url: peer.url, group: name === 'h4' ? 'far' : 'near' },
    peerSource: (record, host) =>
      new HttpSource(`${host.url}/v1/masters/${record.cache}/${record.name}`, {
        http: { inactivityTimeoutMs: 2000 },
      }),
    heartbeatTtlMs: 3000,
    lockTtlMs: 3000,
    logger,
    onPeerFailed: (host, reason) => failures.push(`${host}:${reason}`),
  });
  await fleet.start();
  const cache = new ImageCache({
    name: 'instance',
    masterDir,
    forceRaw: false,
    validate: false,
    retryDelayMs: 50,
    fleet,
    logger,
  });
  const host = { name, cache, fleet, peer, root, failures, logs };
  hosts.push(host);
  return host;
}

beforeAll(async () => {
  redis = connectRedis(SHARED_REDIS, 'worker');
  origin = await startImageServer();
});

beforeEach(() => {
  prefix = uniquePrefix();
});

afterEach(async () => {
  for (const h of hosts.splice(0)) {
    h.fleet.stop();
    await h.peer.close();
  }
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length) await redis.del(...stale);
});

afterAll(async () => {
  await origin.close();
  redis.disconnect();
});

function image(p: string, size: number, opts: { delayMs?: number } = {}): { body: Buffer; sha256: string } {
  const body = randomBytes(size);
  origin.route(p, { body, etag: `"${p}-v1"`, ranges: true, delayMs: opts.delayMs });
  return { body, sha256: createHash('sha256').update(body).digest('hex') };
}

test('four hosts asking at once: one origin GET, the others take it from a peer, every copy verified', async () => {
  const hs = await Promise.all(['h1', 'h2', 'h3', 'h4'].map(startHost));
  const { sha256 } = image('/one.img', 3 * MiB, { delayMs: 300 });
  const href = origin.url('/one.img');
  const results = await Promise.all(
    hs.map((h) => h.cache.fetchImage(href, path.join(h.root, 'dest', 'disk'), { expectedChecksum: sha256 })),
  );
  expect(origin.count('GET', '/one.img')).toBe(1);
  expect(results.filter((r) => r.peer === undefined)).toHaveLength(1);
  for (const [i, r] of results.entries()) {
    expect(r.cacheHit).toBe(false);
    expect(r.checksum).toEqual({ algo: 'sha256', value: sha256 });
    const dest = fs.statSync(r.destPath);
    expect(dest.ino).toBe(fs.statSync(r.masterPath!).ino);
    expect(createHash('sha256').update(fs.readFileSync(r.destPath)).digest('hex')).toBe(sha256);
    expect(hs[i]!.failures).toEqual([]);
  }
  // The directory knows every holder.
  const listed = await new FleetDirectory(redis, prefix).list();
  expect(listed.images).toHaveLength(1);
  expect(listed.images[0]!.holders.map((h) => h.record.host).sort()).toEqual(['h1', 'h2', 'h3', 'h4']);
  expect(listed.images[0]!.holders.every((h) => h.record.sha256 === sha256)).toBe(true);
});

test('a tampered peer is refused and reported; the taker gets the image elsewhere', async () => {
  const [h1, h2] = await Promise.all(['h1', 'h2'].map(startHost));
  const { sha256 } = image('/t.img', 2 * MiB);
  const href = origin.url('/t.img');
  const first = await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'));
  // Bytes changed in place on h1's disk (its peer serves them as they are now).
  const fd = fs.openSync(first.masterPath!, 'r+');
  fs.writeSync(fd, Buffer.from('tampered'), 0, 8, MiB);
  fs.closeSync(fd);
  const r = await h2!.cache.fetchImage(href, path.join(h2!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  expect(r.peer).toBeUndefined();
  expect(origin.count('GET', '/t.img')).toBe(2);
  expect(h2!.failures).toEqual(['h1:unverified']);
  expect(h2!.logs.some((l) => l.includes('peer h1 skipped'))).toBe(true);
  expect(createHash('sha256').update(fs.readFileSync(r.destPath)).digest('hex')).toBe(sha256);
  expect(await new FleetDirectory(redis, prefix).failures()).toEqual({ 'h1/unverified': 1 });
});

test('a peer dying mid-transfer: the taker goes on from another peer', async () => {
  // h3 asks h1 first (its group), which dies after 1 MiB; h4 (another group) then serves it.
  const [h1, h3, h4] = await Promise.all(['h1', 'h3', 'h4'].map(startHost));
  const { sha256 } = image('/k.img', 4 * MiB);
  const href = origin.url('/k.img');
  await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'));
  await h4!.cache.fetchImage(href, path.join(h4!.root, 'dest', 'disk'));
  expect(origin.count('GET', '/k.img')).toBe(1);
  h1!.peer.dieAfter = MiB;
  const r = await h3!.cache.fetchImage(href, path.join(h3!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  expect(origin.count('GET', '/k.img')).toBe(1);
  expect(r.peer).toBe('h4');
  expect(h1!.peer.served).toBeGreaterThan(0);
  expect(h3!.failures).toEqual(['h1:failed']);
  expect(createHash('sha256').update(fs.readFileSync(r.destPath)).digest('hex')).toBe(sha256);
});

test('a claim whose holder died is taken over: the waiting host downloads from the origin', async () => {
  const [h1] = await Promise.all(['h1'].map(startHost));
  const { sha256 } = image('/d.img', MiB);
  const href = origin.url('/d.img');
  // A host that claimed the image and died: its claim is never refreshed nor released, only expires.
  const info = await new HttpSource(href).show();
  const id = { name: masterName(href, undefined, false), validator: info.validator! };
  await redis.set(keys.fleetLock(prefix, fleetImageKey(id)), 'h9:dead', 'PX', 1500);
  const r = await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  expect(r.peer).toBeUndefined();
  expect(origin.count('GET', '/d.img')).toBe(1);
  expect(await redis.exists(keys.fleetLock(prefix, fleetImageKey(id)))).toBe(0);
});
