import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CacheRegistry, ImageCache, masterName, type Logger } from '@imagecache/core';
import { InvalidDestination } from '@imagecache/errors';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { ino } from './helpers';

/** Issue 9, destinations (D1–D3, X1) and master integrity: each attack is refused and changes nothing. */

const imageA = randomBytes(256 * 1024 + 7);
const imageB = randomBytes(128 * 1024 + 3);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const past = new Date(Date.now() - 3600_000);
let server: ImageServer;
let root: string;

beforeEach(async () => {
  server = await startImageServer();
  server.route('/a.img', { body: imageA, lastModified: past });
  server.route('/b.img', { body: imageB, lastModified: past });
  root = tmpDir('imagecache-security-');
  fs.mkdirSync(path.join(root, 'dest'));
});
afterEach(async () => {
  await server.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function cacheAt(name: string, extra: Partial<ConstructorParameters<typeof ImageCache>[0]> = {}): ImageCache {
  return new ImageCache({
    name,
    masterDir: path.join(root, name),
    forceRaw: false,
    retryDelayMs: 10,
    ...extra,
  });
}

async function refusedDest(p: Promise<unknown>, why: RegExp): Promise<InvalidDestination> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as InvalidDestination;
  expect(err).toBeInstanceOf(InvalidDestination);
  expect(err.code).toBe('INVALID_DESTINATION');
  expect(err.message).toMatch(why);
  return err;
}

/** What a master is, to prove it unchanged. */
function snapshot(file: string): { ino: number; sha: string; mtimeMs: number } {
  const st = fs.statSync(file);
  return { ino: st.ino, sha: sha(fs.readFileSync(file)), mtimeMs: st.mtimeMs };
}

function memoryLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => undefined;
  return { debug: noop, info: noop, error: noop, warn: (_o, msg) => warnings.push(msg ?? ''), warnings };
}

describe('destination policy', () => {
  it("D1: refuses another cache's master folder and a master's name in it, through the registry", async () => {
    const instance = cacheAt('instance');
    const tftp = cacheAt('tftp');
    new CacheRegistry().register(instance).register(tftp);
    const hrefA = server.url('/a.img');
    const a = await tftp.fetchImage(hrefA, path.join(root, 'dest', 'a'), { expectedChecksum: sha(imageA) });
    const before = snapshot(a.masterPath!);

    // The attacker fetches B through `instance` onto the master of A that `tftp` holds.
    const onMaster = path.join(tftp.masterDir, masterName(hrefA, undefined, false));
    await refusedDest(instance.fetchImage(server.url('/b.img'), onMaster), /inside the cache folder/);
    await refusedDest(
      instance.fetchImage(server.url('/b.img'), path.join(tftp.masterDir, 'new.img')),
      /inside the cache folder/,
    );
    // Its own work area and metadata are inside its master folder too.
    await refusedDest(
      instance.fetchImage(server.url('/b.img'), path.join(instance.folder.workDir, 'x')),
      /inside the cache folder/,
    );
    await refusedDest(
      instance.fetchImage(server.url('/b.img'), path.join(tftp.folder.metaDir, 'x.json')),
      /inside the cache folder/,
    );
    expect(server.count('GET', '/b.img')).toBe(0);
    expect(snapshot(a.masterPath!)).toEqual(before);
    // tftp's next fetch of A, with the right checksum, is a hit that serves A's bytes.
    const again = await tftp.fetchImage(hrefA, path.join(root, 'dest', 'a2'), {
      expectedChecksum: sha(imageA),
    });
    expect(again.cacheHit).toBe(true);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'a2')))).toBe(sha(imageA));
  });

  it('D2: refuses a destination reached through a symlinked folder that leads into the master folder', async () => {
    const cache = cacheAt('instance');
    const hrefA = server.url('/a.img');
    const a = await cache.fetchImage(hrefA, path.join(root, 'dest', 'a'));
    const before = snapshot(a.masterPath!);
    fs.symlinkSync(cache.masterDir, path.join(root, 'dest', 'sneaky'));
    const name = masterName(hrefA, undefined, false);
    await refusedDest(
      cache.fetchImage(server.url('/b.img'), path.join(root, 'dest', 'sneaky', name)),
      new RegExp(`inside the cache folder ${fs.realpathSync(cache.masterDir)}`),
    );
    // `..` through a link is resolved as the kernel does: dest/sneaky/../x is beside the master folder.
    fs.mkdirSync(path.join(root, 'dest', 'inner'));
    fs.symlinkSync(path.join(cache.masterDir, META_DIR_NAME), path.join(root, 'dest', 'inner', 'meta'));
    await refusedDest(
      cache.fetchImage(server.url('/b.img'), `${path.join(root, 'dest', 'inner', 'meta')}/../${name}`),
      /inside the cache folder/,
    );
    expect(server.count('GET', '/b.img')).toBe(0);
    expect(snapshot(a.masterPath!)).toEqual(before);
    const hit = await cache.fetchImage(hrefA, path.join(root, 'dest', 'a3'));
    expect(hit.cacheHit).toBe(true);
    expect(sha(fs.readFileSync(hit.destPath))).toBe(sha(imageA));
  });

  it('D3: refuses a destination outside destinations.allowedRoots, also through a link, and creates no folder there', async () => {
    const allowed = path.join(root, 'allowed');
    const etc = path.join(root, 'etc');
    fs.mkdirSync(allowed);
    fs.mkdirSync(etc);
    fs.writeFileSync(path.join(etc, 'passwd'), 'root:x:0:0\n');
    fs.symlinkSync(etc, path.join(allowed, 'etc-link'));
    const cache = cacheAt('instance', { destinations: { allowedRoots: [allowed] }, createDestDirs: true });
    const href = server.url('/b.img');
    await refusedDest(cache.fetchImage(href, path.join(etc, 'passwd')), /outside destinations.allowedRoots/);
    await refusedDest(
      cache.fetchImage(href, path.join(allowed, 'etc-link', 'passwd')),
      /outside destinations.allowedRoots/,
    );
    await refusedDest(
      cache.fetchImage(href, path.join(allowed, '..', 'etc', 'passwd')),
      /outside destinations.allowedRoots/,
    );
    // createDestDirs makes folders only under an allowed root.
    await refusedDest(
      cache.fetchImage(href, path.join(etc, 'cron.d', 'job')),
      /outside destinations.allowedRoots/,
    );
    expect(fs.existsSync(path.join(etc, 'cron.d'))).toBe(false);
    expect(fs.readFileSync(path.join(etc, 'passwd'), 'utf8')).toBe('root:x:0:0\n');
    expect(fs.readdirSync(etc)).toEqual(['passwd']);
    expect(server.count('GET')).toBe(0);

    const ok = await cache.fetchImage(href, path.join(allowed, 'node-1', 'disk.img'));
    expect(ok.destPath).toBe(path.join(fs.realpathSync(allowed), 'node-1', 'disk.img'));
    expect(sha(fs.readFileSync(ok.destPath))).toBe(sha(imageB));
  });

  it('X1: a 300-character file name is INVALID_DESTINATION, never a raw system error; 250 works', async () => {
    const cache = cacheAt('instance');
    const href = server.url('/b.img');
    await refusedDest(
      cache.fetchImage(href, path.join(root, 'dest', 'x'.repeat(300))),
      /file name is 300 bytes long; at most 255/,
    );
    await refusedDest(
      cache.fetchImage(href, path.join(root, 'dest', 'y'.repeat(300), 'disk.img')),
      /can't be resolved: ENAMETOOLONG|unusable \(ENAMETOOLONG\)/,
    );
    await refusedDest(cache.fetchImage(href, path.join(root, 'dest', 'a\0b')), /NUL/);
    expect(server.count('GET')).toBe(0);
    // A long (legal) name is replaced atomically too: the name written beside it stays short.
    const long = path.join(root, 'dest', 'z'.repeat(250));
    fs.writeFileSync(long, 'old');
    const r = await cache.fetchImage(href, long);
    expect(sha(fs.readFileSync(long))).toBe(sha(imageB));
    expect(ino(long)).toBe(ino(r.masterPath!));
    expect(fs.readdirSync(path.join(root, 'dest'))).toEqual(['z'.repeat(250)]);
  });

  it('places through the folder that was checked: a symlink swapped in after the check redirects nothing', async () => {
    const cache = cacheAt('instance');
    const hrefA = server.url('/a.img');
    const a = await cache.fetchImage(hrefA, path.join(root, 'dest', 'a'));
    const before = snapshot(a.masterPath!);
    const name = masterName(hrefA, undefined, false);
    const folder = path.join(root, 'dest', 'node');
    fs.mkdirSync(folder);
    let swapped = false;
    const r = await cache.fetchImage(server.url('/b.img'), path.join(folder, name), {
      onProgress: (p) => {
        if (p.stage !== 'link' || swapped) return;
        // Between the check and the link: the folder becomes a link into the master folder.
        fs.renameSync(folder, `${folder}-moved`);
        fs.symlinkSync(cache.masterDir, folder);
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(r.cacheHit).toBe(false);
    expect(snapshot(a.masterPath!)).toEqual(before);
    expect(sha(fs.readFileSync(path.join(`${folder}-moved`, name)))).toBe(sha(imageB));
  });

  it('replaces a destination that is a symlink instead of writing through it', async () => {
    const cache = cacheAt('instance');
    const victim = path.join(root, 'victim');
    fs.writeFileSync(victim, 'precious');
    fs.symlinkSync(victim, path.join(root, 'dest', 'disk.img'));
    await cache.fetchImage(server.url('/b.img'), path.join(root, 'dest', 'disk.img'));
    expect(fs.lstatSync(path.join(root, 'dest', 'disk.img')).isFile()).toBe(true);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
  });
});

describe('master integrity', () => {
  it('never serves a master written in place through a hard-linked destination', async () => {
    const logger = memoryLogger();
    const cache = cacheAt('instance', { logger });
    const href = server.url('/a.img');
    const first = await cache.fetchImage(href, path.join(root, 'dest', 'a'), {
      expectedChecksum: sha(imageA),
    });
    expect(ino(path.join(root, 'dest', 'a'))).toBe(ino(first.masterPath!));
    // The node's user writes its disk in place: same inode, same size, the master's bytes change.
    const tampered = randomBytes(imageA.length);
    const fd = fs.openSync(path.join(root, 'dest', 'a'), 'r+');
    fs.writeSync(fd, tampered, 0, tampered.length, 0);
    fs.closeSync(fd);

    const next = await cache.fetchImage(href, path.join(root, 'dest', 'b'), {
      expectedChecksum: sha(imageA),
    });
    expect(next.cacheHit).toBe(false);
    expect(server.count('GET', '/a.img')).toBe(2);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'b')))).toBe(sha(imageA));
    expect(sha(fs.readFileSync(next.masterPath!))).toBe(sha(imageA));
    expect(ino(next.masterPath!)).not.toBe(ino(path.join(root, 'dest', 'a')));
    expect(logger.warnings.join('\n')).toMatch(/set aside: it changed since it was published/);
    // Without a checksum from the caller, the same.
    fs.writeFileSync(path.join(root, 'dest', 'b'), tampered); // O_TRUNC: same inode
    const third = await cache.fetchImage(href, path.join(root, 'dest', 'c'));
    expect(third.cacheHit).toBe(false);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'c')))).toBe(sha(imageA));
  });

  it('verifies an adopted master (no metadata) once against the caller checksum, then records it', async () => {
    const cache = cacheAt('instance');
    const href = server.url('/a.img');
    const name = masterName(href, undefined, false);
    fs.mkdirSync(cache.masterDir, { recursive: true });
    fs.writeFileSync(path.join(cache.masterDir, name), imageA); // as an Ironic folder holds it
    const r = await cache.fetchImage(href, path.join(root, 'dest', 'a'), { expectedChecksum: sha(imageA) });
    expect(r.cacheHit).toBe(true);
    expect(server.count('GET')).toBe(0);
    const meta = JSON.parse(fs.readFileSync(cache.folder.metaPath(name), 'utf8'));
    expect(meta.checksum).toEqual({ algo: 'sha256', value: sha(imageA) });
    expect(meta.identity).toMatchObject({ ino: ino(path.join(cache.masterDir, name)), size: imageA.length });
    // Recorded: the next hit needs neither hashing nor the checksum.
    expect((await cache.fetchImage(href, path.join(root, 'dest', 'b'))).cacheHit).toBe(true);
    expect(server.count('GET')).toBe(0);
  });

  it('sets aside an adopted master that fails the checksum, or that no checksum can vouch for', async () => {
    const logger = memoryLogger();
    const cache = cacheAt('instance', { logger });
    const href = server.url('/a.img');
    const name = masterName(href, undefined, false);
    const planted = randomBytes(imageA.length);
    fs.mkdirSync(cache.masterDir, { recursive: true });
    fs.writeFileSync(path.join(cache.masterDir, name), planted);
    const r = await cache.fetchImage(href, path.join(root, 'dest', 'a'), { expectedChecksum: sha(imageA) });
    expect(r.cacheHit).toBe(false);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'a')))).toBe(sha(imageA));
    expect(logger.warnings.join('\n')).toMatch(/does not match the checksum given/);

    // No checksum from the caller: nothing to verify it against, so it is fetched again.
    const hrefB = server.url('/b.img');
    const nameB = masterName(hrefB, undefined, false);
    fs.writeFileSync(path.join(cache.masterDir, nameB), planted);
    const b = await cache.fetchImage(hrefB, path.join(root, 'dest', 'b'));
    expect(b.cacheHit).toBe(false);
    expect(server.count('GET', '/b.img')).toBe(1);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'b')))).toBe(sha(imageB));
    expect(JSON.parse(fs.readFileSync(cache.folder.metaPath(nameB), 'utf8')).identity).toBeDefined();
  });

  it("verifies a master with an older version's metadata (no identity) against its recorded checksum", async () => {
    const cache = cacheAt('instance');
    const href = server.url('/a.img');
    const first = await cache.fetchImage(href, path.join(root, 'dest', 'a'));
    const name = path.basename(first.masterPath!);
    const stripIdentity = () => {
      const { identity: _gone, ...old } = JSON.parse(fs.readFileSync(cache.folder.metaPath(name), 'utf8'));
      fs.writeFileSync(cache.folder.metaPath(name), JSON.stringify(old));
    };
    stripIdentity();
    expect((await cache.fetchImage(href, path.join(root, 'dest', 'b'))).cacheHit).toBe(true);
    expect(JSON.parse(fs.readFileSync(cache.folder.metaPath(name), 'utf8')).identity).toBeDefined();
    expect(server.count('GET')).toBe(1);
    // Bytes that no longer match what it records: fetched again.
    fs.writeFileSync(path.join(root, 'dest', 'b'), randomBytes(imageA.length)); // the master's inode
    stripIdentity();
    const r = await cache.fetchImage(href, path.join(root, 'dest', 'c'));
    expect(r.cacheHit).toBe(false);
    expect(sha(fs.readFileSync(path.join(root, 'dest', 'c')))).toBe(sha(imageA));
  });
});

const META_DIR_NAME = '.imagecache-meta';
