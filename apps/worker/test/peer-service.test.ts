import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { peerMasterUrl, peerSourceFor, peerTokenName, signPeerToken } from '@imagecache/peers';
import { CacheRegistry, ImageCache, silentLogger } from '@imagecache/core';
import { ImageCacheClient } from '@imagecache/queue';
import { closeHttpConnections } from '@imagecache/sources';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { HostWorker, WorkerMetrics } from '@imagecache/worker';
import { hostSetup, SHARED_REDIS, startWorker, uniquePrefix, type WorkerProcess } from './harness';

/**
 * Issue 12, the peer service: `imagecache worker --peer-port` serves the masters the host fetched to the other
 * hosts of its fleet. A real worker process, a real Redis, a real origin.
 */
const prefix = uniquePrefix();
const SECRET = 'the fleet secret of this test file';
let origin: ImageServer;
let client: ImageCacheClient;
const started: WorkerProcess[] = [];

beforeAll(async () => {
  origin = await startImageServer();
  client = new ImageCacheClient({
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    pollIntervalMs: 300,
  });
});

afterAll(async () => {
  await client.close();
  await Promise.all(started.map((w) => w.stop('SIGKILL')));
  await closeHttpConnections();
  await origin.close();
});

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

test('a worker started with --peer-port serves the master it fetched, to a token for it only', async () => {
  const setup = hostSetup({ host: 'peer-a', redis: SHARED_REDIS, prefix });
  // The secret comes from the environment and never shows in the output.
  const w = await startWorker(setup.config, ['--peer-port', '0', '--peer-bind', '127.0.0.2'], {
    IMAGECACHE_PEERS_SECRET: SECRET,
  });
  started.push(w);
  const m = /peer service on 127\.0\.0\.2:(\d+) \((http:\/\/127\.0\.0\.2:\d+)\)/.exec(w.output());
  expect(m).not.toBeNull();
  const base = m![2]!;
  expect(base).toBe(`http://127.0.0.2:${m![1]}`);

  const data = randomBytes(3 << 20);
  origin.route('/peer.img', { body: data, lastModified: new Date(0) });
  const result = (await client.fetchImage({
    host: 'peer-a',
    cache: 'instance',
    href: origin.url('/peer.img'),
    dest: setup.dest('peer'),
  })) as { masterPath: string };
  const name = path.basename(result.masterPath);

  const url = peerMasterUrl(base, 'instance', name);
  const token = signPeerToken(SECRET, peerTokenName('instance', name));
  const served = await get(url, { authorization: `Bearer ${token}` });
  expect(served.status).toBe(200);
  expect(served.body.equals(data)).toBe(true);
  expect((await get(url)).status).toBe(401);
  expect(
    (
      await get(url, {
        authorization: `Bearer ${signPeerToken('another secret!', peerTokenName('instance', name))}`,
      })
    ).status,
  ).toBe(401);

  // What another host's engine would use: the peer source, vouching for the sha256 recorded at publish.
  const sha256 = createHash('sha256').update(data).digest('hex');
  const source = peerSourceFor({
    url,
    token: () => signPeerToken(SECRET, peerTokenName('instance', name)),
    expectedSha256: sha256,
  });
  const info = await source.show();
  expect(info).toMatchObject({ size: data.length, checksum: { algo: 'sha256', value: sha256 } });
  const body = await source.open({ offset: 1000, validator: info.validator });
  const chunks: Buffer[] = [];
  for await (const c of body.stream) chunks.push(c as Buffer);
  expect(Buffer.concat(chunks).equals(data.subarray(1000))).toBe(true);

  expect(w.output()).not.toContain(SECRET);
  expect(w.output()).not.toContain(token.split('.')[1]);
  expect(fs.existsSync(setup.dest('peer'))).toBe(true);
  expect(await w.stop()).toBe(0);
  await expect(get(url, { authorization: `Bearer ${token}` })).rejects.toThrow(/ECONNREFUSED/);
}, 60_000);

test('--peer-port without a secret is refused: the worker does not start', async () => {
  const setup = hostSetup({ host: 'peer-b', redis: SHARED_REDIS, prefix });
  await expect(startWorker(setup.config, ['--peer-port', '0'])).rejects.toThrow(/peers\.secret/);
});

test('the peer service counts its uploads and the bytes sent in the worker metrics', async () => {
  const root = tmpDir('imagecache-peer-metrics-');
  const registry = new CacheRegistry().register(
    new ImageCache({
      name: 'instance',
      masterDir: path.join(root, 'instance'),
      forceRaw: false,
      validate: false,
    }),
  );
  const worker = new HostWorker({
    host: 'peer-c',
    registry,
    redis: { mode: 'standalone', url: SHARED_REDIS, prefix },
    sweepIntervalSeconds: 0,
    logger: silentLogger,
    metrics: new WorkerMetrics({ defaultMetrics: false }),
    peerService: { port: 0, secret: SECRET },
  });
  await worker.start();
  try {
    const data = randomBytes(100_000);
    origin.route('/counted.img', { body: data, lastModified: new Date(0) });
    const r = (await client.fetchImage({
      host: 'peer-c',
      cache: 'instance',
      href: origin.url('/counted.img'),
      dest: path.join(root, 'counted'),
    })) as { masterPath: string };
    const name = path.basename(r.masterPath);
    const url = peerMasterUrl(`http://127.0.0.1:${worker.peerPort}`, 'instance', name);
    const auth = { authorization: `Bearer ${signPeerToken(SECRET, peerTokenName('instance', name))}` };
    expect((await get(url, auth)).status).toBe(200);
    expect((await get(url)).status).toBe(401);
    // The upload is counted when the server's side of it ends, which may be just after the client's.
    let text = '';
    for (let i = 0; i < 100 && !text.includes('result="served"'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      text = await worker.metrics!.registry.metrics();
    }
    expect(text).toContain('imagecache_peer_uploads_total{result="served"} 1');
    expect(text).toContain('imagecache_peer_uploads_total{result="unauthorized"} 1');
    expect(text).toContain(`imagecache_peer_bytes_sent_total ${data.length}`);
  } finally {
    await worker.close(1000);
  }
  expect(worker.peerServer).toBeDefined();
}, 60_000);
