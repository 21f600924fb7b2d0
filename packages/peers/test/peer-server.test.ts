import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { META_DIR, WORK_DIR } from '@imagecache/core';
import { PeerServer, type PeerRequestEvent } from '@imagecache/peers';
import { bearer, masterPath, publishedHost, request, SECRET, type PublishedHost } from './helpers';

let host: PublishedHost;
let server: PeerServer;
let base = '';
let master: { name: string; bytes: Buffer; masterPath: string };
const events: PeerRequestEvent[] = [];

beforeAll(async () => {
  host = await publishedHost();
  master = await host.publish(3 * 1024 * 1024 + 17);
  server = new PeerServer({
    caches: [{ name: 'instance', masterDir: host.masterDir }],
    secret: SECRET,
    port: 0,
    onRequest: (e) => events.push(e),
  });
  base = `http://127.0.0.1:${(await server.start()).port}`;
});

afterAll(async () => {
  await server.close();
  await host.close();
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('serving a published master', () => {
  it('GET: every byte, with its size, ETag and the sha256 recorded at publish', async () => {
    const r = await request(base, masterPath('instance', master.name), {
      headers: bearer('instance', master.name),
    });
    expect(r.status).toBe(200);
    expect(r.body.equals(master.bytes)).toBe(true);
    expect(Number(r.headers['content-length'])).toBe(master.bytes.length);
    expect(r.headers['accept-ranges']).toBe('bytes');
    expect(r.headers.etag).toMatch(/^"[0-9a-z-]+"$/);
    expect(r.headers['x-imagecache-sha256']).toBe(sha256(master.bytes));
    expect(r.headers['last-modified']).toBeUndefined(); // the origin's freshness is not the peer's to say
  });

  it('GET with Range bytes=N-: 206 and the rest of the file', async () => {
    const n = 1_000_003;
    const size = master.bytes.length;
    const r = await request(base, masterPath('instance', master.name), {
      headers: { ...bearer('instance', master.name), range: `bytes=${n}-` },
    });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes ${n}-${size - 1}/${size}`);
    expect(Number(r.headers['content-length'])).toBe(size - n);
    expect(r.body.equals(master.bytes.subarray(n))).toBe(true);
  });

  it('If-Range: the range only while the ETag is this file’s; past the end: 416', async () => {
    const p = masterPath('instance', master.name);
    const auth = bearer('instance', master.name);
    const head = await request(base, p, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(master.bytes.length);
    expect(head.body.length).toBe(0);
    const same = await request(base, p, {
      headers: { ...auth, range: 'bytes=10-', 'if-range': head.headers.etag! },
    });
    expect(same.status).toBe(206);
    const other = await request(base, p, { headers: { ...auth, range: 'bytes=10-', 'if-range': '"other"' } });
    expect(other.status).toBe(200);
    expect(other.body.equals(master.bytes)).toBe(true);
    const past = await request(base, p, { headers: { ...auth, range: `bytes=${master.bytes.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${master.bytes.length}`);
    expect(past.body.length).toBe(0);
  });

  it('no sha256 header for a master the download digest does not cover (decompressed from zstd)', async () => {
    const raw = path.join(host.root, 'plain.img');
    fs.writeFileSync(raw, Buffer.alloc(300_000, 7));
    execFileSync('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
    host.origin.route('/plain.img.zst', { file: `${raw}.zst` });
    const r = await host.cache.fetchImage(
      host.origin.url('/plain.img.zst'),
      path.join(host.root, 'plain-dest'),
    );
    const name = path.basename(r.masterPath!);
    const meta = JSON.parse(fs.readFileSync(path.join(host.masterDir, META_DIR, `${name}.json`), 'utf8'));
    expect(meta.decompressed).toBe(true);
    const served = await request(base, masterPath('instance', name), { headers: bearer('instance', name) });
    expect(served.status).toBe(200);
    expect(served.body.equals(fs.readFileSync(raw))).toBe(true);
    expect(served.headers['x-imagecache-sha256']).toBeUndefined();
  });
});

describe('refused, with no byte of any file', () => {
  const refusedWith = async (
    status: number,
    rawPath: string,
    headers: Record<string, string> = {},
    method = 'GET',
  ) => {
    const r = await request(base, rawPath, { headers, method });
    expect({ status: r.status, bytes: r.body.length }).toEqual({ status, bytes: 0 });
    expect(r.headers['x-imagecache-sha256']).toBeUndefined();
    return r.headers['x-imagecache-reason'];
  };

  it('no token, an expired token, a token for another name or cache, another secret', async () => {
    const p = masterPath('instance', master.name);
    expect(await refusedWith(401, p)).toBe('token-malformed');
    expect(await refusedWith(401, p, { authorization: 'Basic eDp5' })).toBe('token-malformed');
    const expired = bearer('instance', master.name, SECRET, 60, Date.now() - 61_000);
    expect(await refusedWith(401, p, expired)).toBe('token-expired');
    const other = await host.publish(1000);
    expect(await refusedWith(401, p, bearer('instance', other.name))).toBe('token-signature');
    expect(await refusedWith(401, p, bearer('tftp', master.name))).toBe('token-signature');
    expect(await refusedWith(401, p, bearer('instance', master.name, 'another secret'))).toBe(
      'token-signature',
    );
    // A token for a cache this host does not serve is valid, the cache is not.
    expect(await refusedWith(404, masterPath('tftp', master.name), bearer('tftp', master.name))).toBe(
      'unknown-cache',
    );
  });

  it('.., encoded %2e%2e, a path with more segments, a method that writes', async () => {
    expect(await refusedWith(404, '/v1/masters/instance/..', bearer('instance', '..'))).toBe(
      'not-a-master-name',
    );
    expect(await refusedWith(404, '/v1/masters/instance/%2e%2e', bearer('instance', '..'))).toBe(
      'not-a-master-name',
    );
    const up = `../${path.basename(host.root)}/instance/${master.name}`;
    expect(
      await refusedWith(404, `/v1/masters/instance/${encodeURIComponent(up)}`, bearer('instance', up)),
    ).toBe('not-a-master-name');
    expect(
      await refusedWith(
        404,
        `/v1/masters/instance/../instance/${master.name}`,
        bearer('instance', master.name),
      ),
    ).toBe('not-a-master-path');
    expect(await refusedWith(404, '/v1/masters/%2e%2e/etc', bearer('..', 'etc'))).toBe('unknown-cache');
    expect(
      await refusedWith(405, masterPath('instance', master.name), bearer('instance', master.name), 'PUT'),
    ).toBe('method');
  });

  it('a work file, a metadata file, a master without metadata', async () => {
    const work = path.join(host.masterDir, WORK_DIR, 'job-1');
    fs.mkdirSync(work, { recursive: true });
    fs.writeFileSync(path.join(work, 'image'), 'partial download');
    const workName = `${WORK_DIR}/job-1/image`;
    expect(await refusedWith(404, masterPath('instance', workName), bearer('instance', workName))).toBe(
      'not-a-master-name',
    );
    const metaName = `${META_DIR}/${master.name}.json`;
    expect(await refusedWith(404, masterPath('instance', metaName), bearer('instance', metaName))).toBe(
      'not-a-master-name',
    );
    const json = `${master.name}.json`;
    expect(await refusedWith(404, masterPath('instance', json), bearer('instance', json))).toBe(
      'not-a-master-name',
    );
    // An Ironic master adopted but not verified yet: the engine has not vouched for it.
    const bare = '11111111-2222-3333-4444-555555555555';
    fs.writeFileSync(path.join(host.masterDir, bare), 'not verified');
    expect(await refusedWith(404, masterPath('instance', bare), bearer('instance', bare))).toBe(
      'not-published',
    );
  });

  it('a symlink under a master name, even with metadata matching its target', async () => {
    const link = '66666666-7777-8888-9999-000000000000';
    fs.symlinkSync(master.masterPath, path.join(host.masterDir, link));
    fs.copyFileSync(
      path.join(host.masterDir, META_DIR, `${master.name}.json`),
      path.join(host.masterDir, META_DIR, `${link}.json`),
    );
    expect(await refusedWith(404, masterPath('instance', link), bearer('instance', link))).toBe(
      'not-a-regular-file',
    );
    // And a folder under a master name.
    const dir = '77777777-7777-8888-9999-000000000000';
    fs.mkdirSync(path.join(host.masterDir, dir));
    const st = fs.statSync(path.join(host.masterDir, dir));
    fs.writeFileSync(
      path.join(host.masterDir, META_DIR, `${dir}.json`),
      JSON.stringify({
        size: st.size,
        converted: false,
        identity: { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs },
      }),
    );
    expect(await refusedWith(404, masterPath('instance', dir), bearer('instance', dir))).toBe(
      'not-a-regular-file',
    );
  });

  it('a FIFO under a master name is refused at once, not waited on', async () => {
    const fifo = '88888888-7777-8888-9999-000000000000';
    execFileSync('mkfifo', [path.join(host.masterDir, fifo)]);
    const st = fs.statSync(path.join(host.masterDir, fifo));
    fs.writeFileSync(
      path.join(host.masterDir, META_DIR, `${fifo}.json`),
      JSON.stringify({
        size: st.size,
        converted: false,
        identity: { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs },
      }),
    );
    expect(await refusedWith(404, masterPath('instance', fifo), bearer('instance', fifo))).toBe(
      'not-a-regular-file',
    );
  });

  it('a master written in place since publish, and one replaced under its name', async () => {
    const tampered = await host.publish(64 * 1024);
    const auth = bearer('instance', tampered.name);
    expect((await request(base, masterPath('instance', tampered.name), { headers: auth })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 20)); // a later mtime than the publish's
    const fd = fs.openSync(tampered.masterPath, 'r+');
    fs.writeSync(fd, Buffer.from('evil'), 0, 4, 100);
    fs.closeSync(fd);
    expect(await refusedWith(404, masterPath('instance', tampered.name), auth)).toBe('changed-since-publish');

    const replaced = await host.publish(64 * 1024);
    const stranger = path.join(host.root, 'stranger');
    fs.writeFileSync(stranger, Buffer.alloc(64 * 1024, 1));
    const before = fs.statSync(replaced.masterPath);
    fs.utimesSync(stranger, before.atime, before.mtime); // same size and mtime: only the inode tells
    fs.renameSync(stranger, replaced.masterPath);
    expect(
      await refusedWith(404, masterPath('instance', replaced.name), bearer('instance', replaced.name)),
    ).toBe('changed-since-publish');
  });

  it('reports each request once with its outcome', () => {
    const results = new Set(events.map((e) => e.result));
    expect(results).toEqual(new Set(['served', 'refused', 'unauthorized']));
    const served = events.filter((e) => e.result === 'served' && e.method === 'GET' && e.status === 200);
    expect(served[0]!.bytes).toBe(master.bytes.length);
  });
});

describe('upload slots', () => {
  it('at most uploadConcurrency uploads at once: the next GET gets 503 with Retry-After, HEAD still answers', async () => {
    const big = await host.publish(48 * 1024 * 1024);
    const limited = new PeerServer({
      caches: [{ name: 'instance', masterDir: host.masterDir }],
      secret: SECRET,
      port: 0,
      uploadConcurrency: 2,
    });
    const port = (await limited.start()).port;
    const url = `http://127.0.0.1:${port}`;
    const p = masterPath('instance', big.name);
    const auth = bearer('instance', big.name);
    try {
      // Two GETs whose bodies are not read: their uploads stay open (backpressure), holding both slots.
      const held: http.ClientRequest[] = [];
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: p, headers: auth, agent: false }, (res) => {
            expect(res.statusCode).toBe(200);
            res.pause();
            resolve();
          });
          req.on('error', reject);
          held.push(req);
        });
      }
      expect(limited.activeUploads).toBe(2);
      const third = await request(url, p, { headers: auth });
      expect(third.status).toBe(503);
      expect(third.headers['retry-after']).toBe('1');
      expect(third.body.length).toBe(0);
      expect((await request(url, p, { method: 'HEAD', headers: auth })).status).toBe(200);
      for (const req of held) req.destroy();
      for (let i = 0; i < 200 && limited.activeUploads > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(limited.activeUploads).toBe(0);
      const again = await request(url, p, {
        headers: { ...auth, range: `bytes=${big.bytes.length - 10}-` },
      });
      expect(again.status).toBe(206);
      expect(again.body.equals(big.bytes.subarray(-10))).toBe(true);
    } finally {
      await limited.close();
    }
  });
});

test('a taker that stops reading loses its upload slot once the connection has been idle idleTimeoutMs', async () => {
  const big = await host.publish(48 * 1024 * 1024);
  const limited = new PeerServer({
    caches: [{ name: 'instance', masterDir: host.masterDir }],
    secret: SECRET,
    port: 0,
    uploadConcurrency: 1,
    idleTimeoutMs: 300,
  });
  const port = (await limited.start()).port;
  let held: http.ClientRequest | undefined;
  try {
    // A paused response stops reading its socket: the client never notices the close; the server's slot tells.
    await new Promise<void>((resolve, reject) => {
      held = http.get(
        {
          host: '127.0.0.1',
          port,
          path: masterPath('instance', big.name),
          headers: bearer('instance', big.name),
          agent: false,
        },
        (res) => {
          res.pause(); // never read again
          resolve();
        },
      );
      held.on('error', reject);
    });
    expect(limited.activeUploads).toBe(1);
    for (let i = 0; i < 500 && limited.activeUploads > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(limited.activeUploads).toBe(0);
  } finally {
    held?.destroy();
    await limited.close();
  }
});

test('a port in use and an unreadable certificate are usage errors at start', async () => {
  const busy = new PeerServer({ caches: [], secret: SECRET, port: Number(new URL(base).port) });
  await expect(busy.start()).rejects.toMatchObject({
    code: 'USAGE_ERROR',
    message: expect.stringMatching(/EADDRINUSE/),
  });
  const tls = new PeerServer({
    caches: [],
    secret: SECRET,
    port: 0,
    tls: { certFile: '/nonexistent/c.pem', keyFile: '/nonexistent/k.pem' },
  });
  await expect(tls.start()).rejects.toMatchObject({
    code: 'USAGE_ERROR',
    message: expect.stringMatching(/peers\.tls\.certFile .* ENOENT/),
  });
  expect(() => new PeerServer({ caches: [], secret: '', port: 0 })).toThrow(
    expect.objectContaining({ code: 'USAGE_ERROR' }),
  );
  expect(() => new PeerServer({ caches: [], secret: SECRET, port: 0, uploadConcurrency: 0 })).toThrow(
    expect.objectContaining({ code: 'USAGE_ERROR' }),
  );
});
