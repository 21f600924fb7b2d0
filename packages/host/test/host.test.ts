import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseHostConfig } from '@imagecache/config';
import { ImageCache, silentLogger, type HostHandle } from '@imagecache/core';
import { UsageError } from '@imagecache/errors';
import { openHost } from '@imagecache/host';
import { closeHttpConnections } from '@imagecache/sources';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';

let root: string;
let server: ImageServer;
const image = randomBytes(256 * 1024);

beforeEach(async () => {
  root = tmpDir('imagecache-host-');
  fs.mkdirSync(path.join(root, 'dest'));
  server = await startImageServer();
  server.route('/disk.img', { body: image, lastModified: new Date(0) });
});
afterEach(async () => {
  await server.close();
  await closeHttpConnections();
});

function configured() {
  return parseHostConfig({
    caches: [
      { name: 'instance', masterDir: path.join(root, 'instance'), forceRaw: false, validate: false },
      { name: 'tftp', masterDir: path.join(root, 'tftp'), forceRaw: false, validate: false },
      { name: 'iso', masterDir: path.join(root, 'iso'), forceRaw: false, validate: false },
    ],
    downloadSlotsDir: path.join(root, 'slots'),
    destinations: { allowedRoots: [path.join(root, 'dest')] },
  });
}

describe('openHost', () => {
  it("builds the configuration's caches, highest priority first, and names the known ones for an unknown", () => {
    const host = openHost(configured(), silentLogger);
    // Priorities by name (instance 50, tftp 25, iso 75), as the configuration gives them.
    expect(host.caches.map((c) => c.name)).toEqual(['iso', 'instance', 'tftp']);
    expect(host.cache()).toBe(host.cache('instance')); // the configuration's first
    expect(host.cache('tftp')).toBeInstanceOf(ImageCache);
    expect(host.cache('tftp').masterDir).toBe(path.join(root, 'tftp'));
    const err = (() => {
      try {
        host.cache('nope');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe('USAGE_ERROR');
    expect((err as UsageError).message).toBe(
      'no cache named nope; this configuration has: instance, tftp, iso',
    );
  });

  it('answers as a HostHandle: fetch, listing and clean-up through the handle, one download slot folder', async () => {
    const host: HostHandle = openHost(configured(), silentLogger);
    const cache = host.cache('instance');
    const a = await cache.fetchImage(server.url('/disk.img'), path.join(root, 'dest', 'a.img'));
    const b = await cache.fetchImage(server.url('/disk.img'), path.join(root, 'dest', 'b.img'));
    expect([a.cacheHit, b.cacheHit]).toEqual([false, true]);
    const inode = (f: string) => fs.statSync(path.join(root, 'dest', f)).ino;
    expect(inode('b.img')).toBe(inode('a.img'));
    expect(fs.readFileSync(path.join(root, 'dest', 'b.img')).equals(image)).toBe(true);
    // The host's download limit lives in the configured folder, shared by every process of the host.
    expect(fs.existsSync(path.join(root, 'slots'))).toBe(true);

    const listing = await cache.listing();
    expect(listing).toMatchObject({ cache: 'instance', masterDir: path.join(root, 'instance') });
    expect(listing.masters.map((m) => [m.path, m.links])).toEqual([[a.masterPath, 3]]);
    expect(listing.masters[0]!.lastUsed).toBeInstanceOf(Date);

    // Enough room already: nothing is cleaned, and the report says what was required.
    const report = await host.cleanUpCaches(path.join(root, 'dest'), [{ href: server.url('/disk.img') }]);
    expect(report).toMatchObject({ directory: path.join(root, 'dest'), required: image.length, cleaned: [] });
    const cleaned = await cache.cleanUp(0);
    expect(cleaned.removed).toEqual([]);
  });
});
