import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CacheFolder, type MasterMeta } from '@imagecache/core';
import { connectRedis, FleetDirectory, keys, type FleetView, type RedisClient } from '@imagecache/queue';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { clientProcess, REPO, SHARED_REDIS, startFleet, uniquePrefix, type FleetHost } from './harness';

/**
 * Issue #12 end to end: four hosts of one fleet on this machine, two worker replicas each (separate processes,
 * each with its own peer service), conductors in processes of their own, a real Redis and a real origin.
 * Groups: h1 and h2 are rack `a`, h3 and h4 rack `b` (a taker asks its own rack first). h1's peer service
 * sends at 2 MiB/s, so a transfer from it lasts long enough to be cut.
 */
const MiB = 1 << 20;
const prefix = uniquePrefix();
const SECRET = 'fleet-test-secret-0123456789abcdef';
let origin: ImageServer;
let hosts: FleetHost[];
let redis: RedisClient;

const byName = (name: string) => hosts.find((h) => h.name === name)!;
const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function serve(p: string, size: number): { href: string; sha256: string } {
  const body = randomBytes(size);
  // Delayed: every host's request is in flight before the first byte leaves the origin.
  origin.route(p, { body, etag: `"${p}-1"`, lastModified: new Date(0), ranges: true, delayMs: 500 });
  return { href: origin.url(p), sha256: createHash('sha256').update(body).digest('hex') };
}

async function fetchOn(host: FleetHost, href: string, sha256: string, dests: string[]) {
  const run = await clientProcess({
    redis: SHARED_REDIS,
    prefix,
    host: host.name,
    cache: 'instance',
    href,
    checksum: `sha256:${sha256}`,
    dests: dests.map((d) => host.setup.dest(d)),
  });
  return run.results;
}

beforeAll(async () => {
  origin = await startImageServer();
  redis = connectRedis(SHARED_REDIS, 'worker');
  hosts = await startFleet({
    hosts: ['h1', 'h2', 'h3', 'h4'],
    replicas: 2,
    redis: SHARED_REDIS,
    prefix,
    secret: SECRET,
    peers: (h) => ({
      group: h === 'h1' || h === 'h2' ? 'a' : 'b',
      ...(h === 'h1' && { bandwidth: '2MiB' }),
    }),
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(hosts.flatMap((h) => h.replicas.map((r) => r.stop('SIGKILL'))));
  await origin.close();
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length) await redis.del(...stale);
  redis.disconnect();
});

describe('a fleet of four hosts', () => {
  it('one uncached image asked on every host at once leaves the origin once; every copy verified', async () => {
    const { href, sha256 } = serve('/fleet.img', 4 * MiB);
    const runs = await Promise.all(hosts.map((h) => fetchOn(h, href, sha256, ['a', 'b'])));
    expect(runs.flat().filter((o) => o.error)).toEqual([]);
    expect(origin.count('GET', '/fleet.img')).toBe(1);
    const misses = runs.flat().filter((o) => o.ok!.cacheHit === false);
    expect(misses).toHaveLength(4); // one per host: its replicas share it through the host's own lock
    expect(misses.filter((o) => o.ok!.peer === undefined)).toHaveLength(1);
    for (const h of hosts) {
      const master = fs.statSync(runs[hosts.indexOf(h)]![0]!.ok!.masterPath as string);
      for (const d of ['a', 'b']) {
        expect(fs.statSync(h.setup.dest(d)).ino).toBe(master.ino);
        expect(sha256Of(h.setup.dest(d))).toBe(sha256);
      }
    }
    // Who holds what, as an operator sees it.
    const ls = spawnSync(
      path.join(REPO, 'bin/imagecache'),
      ['ls', '--fleet', '--redis', SHARED_REDIS, '--redis-prefix', prefix, '--json'],
      { encoding: 'utf8' },
    );
    expect(ls.status).toBe(0);
    const view = JSON.parse(ls.stdout) as FleetView;
    expect(view.hosts.map((h) => [h.host, h.live])).toEqual(hosts.map((h) => [h.name, true]));
    expect(view.images).toHaveLength(1);
    expect(view.images[0]!.holders.map((x) => [x.host, x.live, x.sha256])).toEqual(
      hosts.map((h) => [h.name, true, sha256]),
    );
  }, 120_000);

  it('four images asked on every host at once: each leaves the origin once', async () => {
    const images = ['/m1.img', '/m2.img', '/m3.img', '/m4.img'].map((p) => ({ p, ...serve(p, MiB) }));
    const runs = await Promise.all(
      hosts.flatMap((h) => images.map((i) => fetchOn(h, i.href, i.sha256, [`m-${i.p.slice(1)}`]))),
    );
    expect(runs.flat().filter((o) => o.error)).toEqual([]);
    for (const i of images) expect(origin.count('GET', i.p)).toBe(1);
    for (const h of hosts)
      for (const i of images) expect(sha256Of(h.setup.dest(`m-${i.p.slice(1)}`))).toBe(i.sha256);
  }, 120_000);

  it("a host's replica killed: its master is taken from the host's other replica", async () => {
    const { href, sha256 } = serve('/replica.img', 2 * MiB);
    const [h2, h3] = ['h2', 'h3'].map(byName) as [FleetHost, FleetHost];
    await fetchOn(h2, href, sha256, ['r']);
    // The replica whose peer service the host's announcement names (the one takers would ask first) dies.
    const announced = JSON.parse((await redis.get(keys.fleetHost(prefix, 'h2')))!) as { url: string };
    const port = new URL(announced.url).port;
    const victim = h2.replicas.find((r) => r.output().includes(`peer service on 127.0.0.1:${port}`))!;
    await victim.stop('SIGKILL');
    h2.replicas.splice(h2.replicas.indexOf(victim), 1);
    const [taken] = await fetchOn(h3, href, sha256, ['r']);
    expect(taken!.error).toBeUndefined();
    expect(taken!.ok!.peer).toBe('h2');
    expect(origin.count('GET', '/replica.img')).toBe(1);
    expect(sha256Of(h3.setup.dest('r'))).toBe(sha256);
  }, 60_000);

  it('a tampered master is refused by the others, reported, and the image taken elsewhere', async () => {
    const { href, sha256 } = serve('/tampered.img', 2 * MiB);
    const h3 = byName('h3');
    const h4 = byName('h4');
    const [first] = await fetchOn(h4, href, sha256, ['t']);
    const masterPath = first!.ok!.masterPath as string;
    // Bytes changed in place on h4, and its metadata made to match (its peer service serves it then).
    const fd = fs.openSync(masterPath, 'r+');
    fs.writeSync(fd, Buffer.from('tampered'), 0, 8, MiB);
    fs.closeSync(fd);
    const metaPath = new CacheFolder(path.dirname(masterPath)).metaPath(path.basename(masterPath));
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as MasterMeta;
    const st = fs.statSync(masterPath);
    meta.identity = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    fs.writeFileSync(metaPath, JSON.stringify(meta));

    const [taken] = await fetchOn(h3, href, sha256, ['t']);
    expect(taken!.error).toBeUndefined();
    expect(taken!.ok!.peer).toBeUndefined(); // h4 held it alone: the origin again
    expect(origin.count('GET', '/tampered.img')).toBe(2);
    expect(sha256Of(h3.setup.dest('t'))).toBe(sha256);
    expect((await new FleetDirectory(redis, prefix).failures())['h4/unverified']).toBe(1);
    const logs = h3.replicas.map((r) => r.output()).join('\n');
    expect(logs).toContain('peer h4 skipped: its bytes do not verify');
  }, 60_000);

  it('a peer killed mid-transfer: the taker goes on from another peer', async () => {
    const { href, sha256 } = serve('/killed.img', 6 * MiB);
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map(byName) as [FleetHost, FleetHost, FleetHost];
    await fetchOn(h1, href, sha256, ['k']);
    await fetchOn(h3, href, sha256, ['k']);
    expect(origin.count('GET', '/killed.img')).toBe(1);
    // h2 asks h1 first (its rack), which sends at 2 MiB/s: killed (both replicas) once bytes arrive.
    const taking = fetchOn(h2, href, sha256, ['k']);
    const work = path.join(h2.setup.masterDir('instance'), '.imagecache-work');
    const arriving = () =>
      fs.readdirSync(work).some((d) => {
        try {
          return fs.statSync(path.join(work, d, 'image')).size > 0;
        } catch {
          return false;
        }
      });
    while (!arriving()) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(h1.replicas.map((r) => r.stop('SIGKILL')));
    const [taken] = await taking;
    expect(taken!.error).toBeUndefined();
    expect(taken!.ok!.peer).toBe('h3');
    expect(origin.count('GET', '/killed.img')).toBe(1);
    expect(sha256Of(h2.setup.dest('k'))).toBe(sha256);
    expect(h2.replicas.map((r) => r.output()).join('\n')).toContain('peer h1 skipped');
  }, 60_000);
});
