import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { cli } from './run-cli';

const data = randomBytes(5 << 20);
const sha256 = createHash('sha256').update(data).digest('hex');
let server: ImageServer;
let root: string;
let master: string;
const dest = (n: string) => path.join(root, 'dest', n);

beforeEach(async () => {
  server = await startImageServer();
  server.route('/disk.img', { body: data, lastModified: new Date(0) });
  root = tmpDir('imagecache-cli-');
  master = path.join(root, 'master');
  fs.mkdirSync(path.join(root, 'dest'));
});
afterEach(() => server.close());

describe('imagecache fetch', () => {
  it('fetches on a miss, hits afterwards, and prints one JSON object', async () => {
    const miss = await cli([
      'fetch',
      server.url('/disk.img'),
      dest('a.img'),
      '--master-dir',
      master,
      '--no-force-raw',
      '--json',
    ]);
    expect(miss.code).toBe(0);
    const r = miss.json();
    expect(r).toMatchObject({
      cacheHit: false,
      destPath: dest('a.img'),
      size: data.length,
      checksum: { algo: 'sha256', value: sha256 },
    });
    expect(fs.readFileSync(dest('a.img')).equals(data)).toBe(true);
    expect(fs.statSync(dest('a.img')).ino).toBe(fs.statSync(r.masterPath).ino);

    const hit = await cli([
      'fetch',
      server.url('/disk.img'),
      dest('b.img'),
      '--master-dir',
      master,
      '--no-force-raw',
      '--json',
    ]);
    expect(hit.json()).toMatchObject({ cacheHit: true, placedBy: 'link', bytesDownloaded: 0 });
    expect(server.count('GET')).toBe(1);
  });

  it('prints plain progress lines on stderr when it is not a terminal', async () => {
    const r = await cli([
      'fetch',
      server.url('/disk.img'),
      dest('a.img'),
      '--master-dir',
      master,
      '--no-force-raw',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^fetch: download .*of 5 MiB/m);
    expect(r.stdout).toContain(`${dest('a.img')}: downloaded 5 MiB`);
  });

  it.each([
    ['a 404', ['fetch', '{url}/missing.img', '{dest}'], 20, 'IMAGE_NOT_FOUND'],
    ['a malformed href', ['fetch', 'htp:/x', '{dest}'], 10, 'INVALID_HREF'],
    ['a relative destination', ['fetch', '{url}/disk.img', 'dest.img'], 12, 'INVALID_DESTINATION'],
    [
      'a wrong checksum',
      ['fetch', '{url}/disk.img', '{dest}', '--checksum', 'sha256:' + 'a'.repeat(64)],
      30,
      'IMAGE_CHECKSUM_ERROR',
    ],
    [
      'a checksum of an unknown algorithm',
      ['fetch', '{url}/disk.img', '{dest}', '--checksum', 'crc:12'],
      31,
      'IMAGE_CHECKSUM_ALGORITHM_FAILURE',
    ],
    ['a size limit of abc', ['fetch', '{url}/disk.img', '{dest}', '--cache-size', 'abc'], 3, 'CONFIG_ERROR'],
    ['file:///dev/zero', ['fetch', 'file:///dev/zero', '{dest}'], 11, 'IMAGE_REF_VALIDATION_FAILED'],
    ['a missing argument', ['fetch', '{url}/disk.img'], 2, 'USAGE_ERROR'],
  ])('exits with a stable status for %s', async (_label, args, status, code) => {
    const argv = args.map((a) =>
      a.replace('{url}', `http://127.0.0.1:${server.port}`).replace('{dest}', dest('x.img')),
    );
    const r = await cli([...argv, '--master-dir', master, '--no-force-raw', '--json']);
    expect(r.code).toBe(status);
    expect(r.json().error.code).toBe(code);
    expect(fs.existsSync(dest('x.img'))).toBe(false);
    const masters = fs.existsSync(master) ? fs.readdirSync(master).filter((f) => !f.startsWith('.')) : [];
    expect(masters).toEqual([]);
  });

  it('never prints credentials of an href', async () => {
    server.route('/private.img', { status: 401 });
    const r = await cli([
      'fetch',
      `http://alice:pa55word@127.0.0.1:${server.port}/private.img`,
      dest('p'),
      '--master-dir',
      master,
      '--log-level',
      'debug',
    ]);
    expect(r.code).toBe(21);
    expect(r.stdout + r.stderr).not.toContain('pa55word');
    expect(r.stderr).toContain('IMAGE_AUTH_REQUIRED');
  });

  it('downloads once for 8 processes fetching one uncached image at once', async () => {
    server.route('/slow.img', { body: data, lastModified: new Date(0), delayMs: 300 });
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        cli([
          'fetch',
          server.url('/slow.img'),
          dest(`n${i}`),
          '--master-dir',
          master,
          '--no-force-raw',
          '--json',
        ]),
      ),
    );
    for (const r of runs) expect(r.code).toBe(0);
    expect(server.count('GET', '/slow.img')).toBe(1);
    const inodes = new Set(runs.map((_, i) => fs.statSync(dest(`n${i}`)).ino));
    expect(inodes.size).toBe(1);
    expect(runs.filter((r) => r.json().cacheHit === false)).toHaveLength(1);
  });

  it('recovers after a process is killed mid-download: leftovers are swept, the next fetch completes', async () => {
    // Blocks (256 KiB for an image this small) reach the disk whole: stall 128 KiB past 9 MiB.
    const big = randomBytes(12 << 20);
    server.route('/stall.img', {
      body: big,
      lastModified: new Date(0),
      etag: '"v1"',
      ranges: true,
      stallAt: (9 << 20) + (128 << 10),
    });
    let pid = 0;
    const running = cli(
      ['fetch', server.url('/stall.img'), dest('k'), '--master-dir', master, '--no-force-raw'],
      {
        onSpawn: (p) => (pid = p),
      },
    );
    const work = path.join(master, '.imagecache-work');
    const partialSize = () => {
      const dirs = fs.existsSync(work) ? fs.readdirSync(work) : [];
      return dirs.length
        ? (fs.statSync(path.join(work, dirs[0]!, 'image'), { throwIfNoEntry: false })?.size ?? 0)
        : 0;
    };
    for (let i = 0; i < 200 && partialSize() < 9 << 20; i++) await new Promise((r) => setTimeout(r, 25));
    expect(partialSize()).toBe(9 << 20);
    // bin/imagecache execs node, so the pid is node's own.
    process.kill(pid, 'SIGKILL');
    expect((await running).signal).toBe('SIGKILL');
    expect(fs.existsSync(dest('k'))).toBe(false);

    server.route('/stall.img', { body: big, lastModified: new Date(0), etag: '"v1"', ranges: true });
    // The dead process's lock is stale only after 10 s; a new fetch waits for it, takes over, and continues
    // the partial download with Range.
    const r = await cli([
      'fetch',
      server.url('/stall.img'),
      dest('k'),
      '--master-dir',
      master,
      '--no-force-raw',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const last = server.requests.filter((q) => q.method === 'GET').pop()!;
    expect(last.headers.range).toMatch(/^bytes=\d+-$/);
    expect(r.json().bytesDownloaded).toBeLessThanOrEqual(big.length - (9 << 20));
    expect(fs.readFileSync(dest('k')).equals(big)).toBe(true);
    expect(fs.readdirSync(work)).toEqual([]);
  }, 60_000);
});
