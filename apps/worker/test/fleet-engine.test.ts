import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CacheFolder,
  ImageCache,
  masterName,
  silentLogger,
  type Logger,
  type MasterMeta,
} from '@imagecache/core';
import { PeerServer, peerMasterUrl, peerSourceFor, peerTokenName, signPeerToken } from '@imagecache/peers';
import { connectRedis, FleetDirectory, fleetImageKey, keys, type RedisClient } from '@imagecache/queue';
import { HttpSource } from '@imagecache/sources';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { WorkerMetrics } from '../src/metrics';
import { RedisFleet } from '../src/redis-fleet';
import { SHARED_REDIS, uniquePrefix } from './harness';

/**
 * The fetch order of issue #12 in one process: four engines, each its own master folder and peer service,
 * sharing a directory and single flight in Redis. (apps/worker/test/fleet.test.ts runs it as worker processes.)
 */

const MiB = 1 << 20;
const SECRET = 'fleet-engine-test-secret-0123456789';

/** A logger that keeps what was logged (the skipped peers are reported there). */
function recordingLogger(lines: string[]): Logger {
  const log = (obj: object, msg?: string) => void lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  return { ...silentLogger, info: log, warn: log };
}

interface Host {
  name: string;
  cache: ImageCache;
  fleet: RedisFleet;
  peer: PeerServer;
  root: string;
  failures: string[];
  logs: string[];
}

let redis: RedisClient;
let prefix: string;
let origin: ImageServer;
const hosts: Host[] = [];

async function startHost(
  name: string,
  opts: { forceRaw?: boolean; uploadConcurrency?: number } = {},
): Promise<Host> {
  const root = tmpDir(`imagecache-fleet-${name}-`);
  const masterDir = path.join(root, 'instance');
  fs.mkdirSync(masterDir);
  fs.mkdirSync(path.join(root, 'dest'));
  // h1 sends slowly: a transfer from it lasts long enough to be cut.
  const peer = new PeerServer({
    caches: [{ name: 'instance', masterDir }],
    secret: SECRET,
    port: 0,
    ...(name === 'h1' && { bytesPerSec: 2 * MiB }),
    ...(opts.uploadConcurrency !== undefined && { uploadConcurrency: opts.uploadConcurrency }),
  });
  const { port } = await peer.start();
  const failures: string[] = [];
  const logs: string[] = [];
  const logger = recordingLogger(logs);
  const fleet = new RedisFleet({
    redis,
    prefix,
    self: { host: name, url: `http://127.0.0.1:${port}`, group: name === 'h4' ? 'far' : 'near' },
    peerSource: (record, baseUrl) =>
      peerSourceFor({
        url: peerMasterUrl(baseUrl, record.cache, record.name),
        token: () => signPeerToken(SECRET, peerTokenName(record.cache, record.name)),
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
    forceRaw: opts.forceRaw ?? false,
    validate: opts.forceRaw ?? false,
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
    await h.peer.close().catch(() => undefined);
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
  const hs = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((n) => startHost(n)));
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
  // A worker's metrics say where its misses came from.
  const metrics = new WorkerMetrics({ defaultMetrics: false });
  for (const r of results) metrics.recordFetch('instance', r);
  const text = await metrics.registry.metrics();
  expect(text).toContain('imagecache_fleet_misses_total{cache="instance",source="peer"} 3');
  expect(text).toContain('imagecache_fleet_misses_total{cache="instance",source="origin"} 1');
  // The directory knows every holder.
  const listed = await new FleetDirectory(redis, prefix).list();
  expect(listed.images).toHaveLength(1);
  expect(listed.images[0]!.holders.map((h) => h.record.host).sort()).toEqual(['h1', 'h2', 'h3', 'h4']);
  expect(listed.images[0]!.holders.every((h) => h.record.sha256 === sha256)).toBe(true);
});

test('a tampered peer is refused and reported; the taker gets the image elsewhere', async () => {
  const [h1, h2] = await Promise.all(['h1', 'h2'].map((n) => startHost(n)));
  const { sha256 } = image('/t.img', 2 * MiB);
  const href = origin.url('/t.img');
  const first = await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'));
  // Bytes changed in place on h1's disk (its peer serves them as they are now).
  const fd = fs.openSync(first.masterPath!, 'r+');
  fs.writeSync(fd, Buffer.from('tampered'), 0, 8, MiB);
  fs.closeSync(fd);
  // ...and its metadata made to match, so its peer service serves it: only the sha256 can tell.
  const metaPath = new CacheFolder(path.dirname(first.masterPath!)).metaPath(
    path.basename(first.masterPath!),
  );
  const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as MasterMeta;
  const st = fs.statSync(first.masterPath!);
  meta.identity = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  fs.writeFileSync(metaPath, JSON.stringify(meta));
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
  const [h1, h3, h4] = await Promise.all(['h1', 'h3', 'h4'].map((n) => startHost(n)));
  const { sha256 } = image('/k.img', 4 * MiB);
  const href = origin.url('/k.img');
  await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'));
  await h4!.cache.fetchImage(href, path.join(h4!.root, 'dest', 'disk'));
  expect(origin.count('GET', '/k.img')).toBe(1);
  // h1's peer service goes away once it has begun to send (as a host killed mid-transfer).
  const taking = h3!.cache.fetchImage(href, path.join(h3!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  while (h1!.peer.activeUploads === 0) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  await h1!.peer.close();
  const r = await taking;
  expect(origin.count('GET', '/k.img')).toBe(1);
  expect(r.peer).toBe('h4');
  expect(h3!.failures).toEqual(['h1:failed']);
  expect(createHash('sha256').update(fs.readFileSync(r.destPath)).digest('hex')).toBe(sha256);
});

test('a claim whose holder died is taken over: the waiting host downloads from the origin', async () => {
  const [h1] = await Promise.all(['h1'].map((n) => startHost(n)));
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

test("a converted master: taken from a peer as raw, the caller's checksum (of the qcow2) met by the origin checksum its host recorded", async () => {
  const [h1, h2] = await Promise.all(['h1', 'h2'].map((n) => startHost(n, { forceRaw: true })));
  const dir = tmpDir('imagecache-fleet-qcow2-');
  const qcow2 = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-f', 'qcow2', qcow2, '8M'], { stdio: 'pipe' });
  const body = fs.readFileSync(qcow2);
  const sha256 = createHash('sha256').update(body).digest('hex');
  origin.route('/disk.qcow2', { body, etag: '"qcow2-1"', ranges: true });
  const href = origin.url('/disk.qcow2');
  const first = await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  expect(first).toMatchObject({ converted: true, format: 'raw' });
  const r = await h2!.cache.fetchImage(href, path.join(h2!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
    expectedFormat: 'qcow2',
  });
  expect(r).toMatchObject({
    peer: 'h1',
    converted: true,
    format: 'raw',
    checksum: { algo: 'sha256', value: sha256 },
  });
  expect(origin.count('GET', '/disk.qcow2')).toBe(1);
  expect(fs.readFileSync(r.destPath).equals(fs.readFileSync(first.destPath))).toBe(true);
  // A caller whose checksum contradicts the recorded one is not served by that peer: the origin then says no.
  const wrong = 'b'.repeat(64);
  await expect(
    h2!.cache.fetchImage(href, path.join(h2!.root, 'dest', 'other'), { expectedChecksum: wrong }),
  ).rejects.toMatchObject({ code: 'IMAGE_CHECKSUM_ERROR' });
  expect(h2!.failures).toEqual([]);
});

test('a host that joins again announces the masters it still holds, and only those', async () => {
  const [h1] = await Promise.all(['h1'].map((n) => startHost(n)));
  image('/a.img', MiB);
  const b = image('/b.img', MiB);
  const ra = await h1!.cache.fetchImage(origin.url('/a.img'), path.join(h1!.root, 'dest', 'a'));
  await h1!.cache.fetchImage(origin.url('/b.img'), path.join(h1!.root, 'dest', 'b'));
  // Redis lost the directory; meanwhile a master went (evicted by hand here: its metadata stays).
  const lost = await redis.keys(`${prefix}:fleet:*`);
  await redis.del(...lost);
  fs.rmSync(path.join(h1!.root, 'dest', 'a'));
  fs.rmSync(ra.masterPath!);
  expect(await h1!.fleet.resync([h1!.cache])).toBe(1);
  const listed = await new FleetDirectory(redis, prefix).list();
  expect(listed.images.map((i) => i.holders.map((h) => [h.record.host, h.record.sha256]))).toEqual([
    [['h1', b.sha256]],
  ]);
});

test('a holder with no upload slot free is asked again, not skipped for the origin', async () => {
  // h1 holds the image, sends one upload at a time (slowly): two of the three takers find it busy.
  const h1 = await startHost('h1', { uploadConcurrency: 1 });
  const takers = await Promise.all(['h2', 'h3', 'h4'].map((n) => startHost(n)));
  const { sha256 } = image('/busy.img', 2 * MiB);
  const href = origin.url('/busy.img');
  await h1.cache.fetchImage(href, path.join(h1.root, 'dest', 'disk'));
  // Only h1 is asked: the takers' own records would let them serve each other.
  for (const t of takers) t.fleet.published = async () => undefined;
  const results = await Promise.all(
    takers.map((t) =>
      t.cache.fetchImage(href, path.join(t.root, 'dest', 'disk'), { expectedChecksum: sha256 }),
    ),
  );
  expect(origin.count('GET', '/busy.img')).toBe(1);
  expect(results.map((r) => r.peer)).toEqual(['h1', 'h1', 'h1']);
  expect(takers.flatMap((t) => t.failures)).toEqual([]);
  expect(takers.some((t) => t.logs.some((l) => l.includes('peer busy')))).toBe(true);
});

test('Redis away: the fleet is skipped (logged), the miss goes to the origin', async () => {
  const root = tmpDir('imagecache-fleet-noredis-');
  const logs: string[] = [];
  const gone = connectRedis('redis://127.0.0.1:1', 'producer'); // nothing listens there
  const fleet = new RedisFleet({
    redis: gone,
    prefix,
    self: { host: 'h9', url: 'http://127.0.0.1:1' },
    peerSource: () => {
      throw new Error('no peer can be offered');
    },
    logger: recordingLogger(logs),
  });
  const cache = new ImageCache({
    name: 'instance',
    masterDir: path.join(root, 'instance'),
    forceRaw: false,
    validate: false,
    fleet,
    logger: recordingLogger(logs),
  });
  const { sha256 } = image('/noredis.img', MiB);
  fs.mkdirSync(path.join(root, 'dest'));
  try {
    const r = await cache.fetchImage(origin.url('/noredis.img'), path.join(root, 'dest', 'disk'), {
      expectedChecksum: sha256,
    });
    expect(r.peer).toBeUndefined();
    expect(origin.count('GET', '/noredis.img')).toBe(1);
    expect(logs.some((l) => l.includes('fleet unavailable'))).toBe(true);
  } finally {
    gone.disconnect();
  }
});

test('a decompressed master: taken from a peer, its metadata says the checksum covers the download, not it', async () => {
  const [h1, h2] = await Promise.all(['h1', 'h2'].map((n) => startHost(n)));
  const dir = tmpDir('imagecache-fleet-zstd-');
  const raw = path.join(dir, 'disk.raw');
  fs.writeFileSync(raw, randomBytes(MiB));
  execFileSync('zstd', ['-q', raw, '-o', `${raw}.zst`]);
  const body = fs.readFileSync(`${raw}.zst`);
  const sha256 = createHash('sha256').update(body).digest('hex');
  origin.route('/disk.raw.zst', { body, etag: '"zst-1"', ranges: true });
  const href = origin.url('/disk.raw.zst');
  await h1!.cache.fetchImage(href, path.join(h1!.root, 'dest', 'disk'), { expectedChecksum: sha256 });
  const r = await h2!.cache.fetchImage(href, path.join(h2!.root, 'dest', 'disk'), {
    expectedChecksum: sha256,
  });
  expect(r).toMatchObject({ peer: 'h1', checksum: { algo: 'sha256', value: sha256 } });
  expect(fs.readFileSync(r.destPath).equals(fs.readFileSync(raw))).toBe(true);
  const meta = JSON.parse(
    fs.readFileSync(h2!.cache.folder.metaPath(path.basename(r.masterPath!)), 'utf8'),
  ) as MasterMeta;
  expect(meta).toMatchObject({ decompressed: true, converted: false, checksum: { value: sha256 } });
  expect(meta.sha256).toBe(createHash('sha256').update(fs.readFileSync(raw)).digest('hex'));
});
