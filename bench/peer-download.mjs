#!/usr/bin/env node
// Issue 12: is a download from a peer as fast as one from the origin? The same engine fetches the same 1 GiB image
// (a) from nginx (the origin: sendfile, almost no CPU) and (b) from another host's peer service (PeerServer, in a
// process of its own, serving the master that (a) published), rounds alternating, each into a fresh master folder.
// Reports wall and CPU of the fetching process, medians, and the ratio origin / peer (the target: a peer
// download at ≥ 0.9× an origin download, i.e. origin/peer wall ≥ 0.9).
//
//   node bench/peer-download.mjs [--size 1GiB] [--rounds 5]
//
// Needs `pnpm build` and nginx (../shared/anchors/serve.sh starts it; falls back to bench/server.mjs, a Node
// server, with a warning: then the origin steals CPU from the fetch). Not run in CI: it wants a quiet machine.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ensureImage,
  freshDir,
  GiB,
  IMAGES,
  log,
  median,
  MiB,
  now,
  requireDist,
  ROOT,
  round,
  startServer,
} from './lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const SIZE = /GiB$/.test(opt('--size', '1GiB'))
  ? parseInt(opt('--size', '1GiB')) * GiB
  : parseInt(opt('--size')) * MiB;
const ROUNDS = Number(opt('--rounds', 5));
const SECRET = randomBytes(24).toString('hex');
const NGINX_PORT = 18191;

const { ImageCache, silentLogger } = await requireDist('packages/core');
const { peerSourceFor, signPeerToken, peerMasterUrl, peerTokenName } = await requireDist('packages/peers');

/** The origin: nginx when the anchors' script is there, else bench/server.mjs. */
async function startOrigin() {
  const serve = path.resolve(ROOT, '../shared/anchors/serve.sh');
  if (fs.existsSync(serve)) {
    execFileSync('bash', [serve, IMAGES, String(NGINX_PORT)], { stdio: ['ignore', 'ignore', 'inherit'] });
    const stop = path.resolve(ROOT, '../shared/anchors/stop-server.sh');
    return {
      kind: 'nginx',
      url: (n) => `http://127.0.0.1:${NGINX_PORT}/${n}`,
      stop: () => execFileSync('bash', [stop, String(NGINX_PORT)], { stdio: 'ignore' }),
    };
  }
  log('nginx not found (../shared/anchors/serve.sh): the origin is bench/server.mjs, a Node server');
  const s = await startServer();
  return { kind: 'node', url: s.url, stop: s.stop };
}

/** A PeerServer over `masterDir` in a process of its own; resolves to its base URL. */
async function startPeer(masterDir) {
  const code = `
    const { PeerServer } = require(${JSON.stringify(path.join(ROOT, 'packages/peers/dist/index.js'))});
    const s = new PeerServer({ caches: [{ name: 'bench', masterDir: process.argv[1] }], secret: process.env.S, port: 0 });
    s.start().then(({ port }) => console.log('listening ' + port));
    process.stdin.on('end', () => s.close().then(() => process.exit(0)));
    process.stdin.resume();`;
  const child = spawn(process.execPath, ['-e', code, masterDir], {
    env: { ...process.env, S: SECRET },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec((buf += d));
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (c) => reject(new Error(`peer server exited ${c}`)));
  });
  return { base: `http://127.0.0.1:${port}`, stop: () => child.stdin.end() };
}

/** One fetch into a fresh master folder; wall and CPU of this process. */
async function timedFetch(cache, href, dest) {
  execFileSync('sync');
  const c0 = process.cpuUsage();
  const t0 = now();
  const r = await cache.fetchImage(href, dest, { expectedChecksum: `sha256:${img.sha}` });
  const cpu = process.cpuUsage(c0);
  return { wall: (now() - t0) / 1000, cpu: (cpu.user + cpu.system) / 1e6, peer: r.peer };
}

const img = ensureImage(SIZE);
const origin = await startOrigin();
const href = origin.url(img.name);
const holderDir = freshDir('peer-holder');
const holder = new ImageCache({ name: 'bench', masterDir: holderDir, validate: false, logger: silentLogger });
await holder.fetchImage(href, path.join(freshDir('peer-holder-dest'), 'disk'), {
  expectedChecksum: `sha256:${img.sha}`,
});
const master = fs.readdirSync(holderDir).find((f) => !f.startsWith('.'));
const peer = await startPeer(holderDir);

/** A fleet of one peer: the holder above (no Redis: the engine's Fleet interface, given directly). */
const fleet = {
  offers: async () => [
    {
      host: 'holder',
      cache: 'bench',
      name: master,
      sha256: img.sha,
      size: img.size,
      checksum: { algo: 'sha256', value: img.sha },
      converted: false,
      source: peerSourceFor({
        url: peerMasterUrl(peer.base, 'bench', master),
        token: () => signPeerToken(SECRET, peerTokenName('bench', master)),
        expectedSha256: img.sha,
        expectedSize: img.size,
      }),
    },
  ],
  claim: async () => ({ owner: true, release: async () => undefined }),
  published: async () => undefined,
  evicted: async () => undefined,
  peerFailed: (_o, reason, message) => {
    throw new Error(`peer skipped (${reason}): ${message}`);
  },
};

const rows = { origin: [], peer: [] };
try {
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['origin', 'peer'] : ['peer', 'origin'];
    for (const kind of order) {
      const dir = freshDir(`peer-${kind}`);
      const cache = new ImageCache({
        name: 'bench',
        masterDir: path.join(dir, 'master'),
        validate: false,
        logger: silentLogger,
        ...(kind === 'peer' && { fleet }),
      });
      fs.mkdirSync(path.join(dir, 'dest'));
      const m = await timedFetch(cache, href, path.join(dir, 'dest', 'disk'));
      if (kind === 'peer' && m.peer !== 'holder')
        throw new Error('the peer fetch did not come from the peer');
      rows[kind].push(m);
      log(`round ${r + 1} ${kind}: ${round(m.wall)} s, CPU ${round(m.cpu)} s`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
} finally {
  peer.stop();
  origin.stop();
}

const med = (k, f) => median(rows[k].map((x) => x[f]));
const ratios = rows.origin.map((o, i) => o.wall / rows.peer[i].wall);
console.log(
  `origin (${origin.kind}): wall ${round(med('origin', 'wall'))} s, CPU ${round(med('origin', 'cpu'))} s (medians)`,
);
console.log(
  `peer (PeerServer): wall ${round(med('peer', 'wall'))} s, CPU ${round(med('peer', 'cpu'))} s (medians)`,
);
console.log(
  `peer download speed / origin download speed (same-round, median): ${round(median(ratios), 2)} ` +
    `(${round(Math.min(...ratios), 2)}–${round(Math.max(...ratios), 2)}); target ≥ 0.9`,
);
