import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageCache } from '@imagecache/core';
import { ImageCacheError } from '@imagecache/errors';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { masters, newCache } from './helpers';

let server: ImageServer;
beforeAll(async () => {
  server = await startImageServer();
  server.route('/ok.img', { body: 'x'.repeat(1000), lastModified: new Date(0) });
});
afterAll(() => server.close());

/** Each bad input gets a typed error with a stable code, and the cache and destination stay as they were. */
describe('bad input', () => {
  const { cache, dest, root } = newCache();
  const outside = tmpDir('imagecache-outside-');
  fs.writeFileSync(path.join(outside, 'secret.img'), 'outside');
  fs.symlinkSync(path.join(outside, 'secret.img'), path.join(root, 'link.img'));
  fs.mkdirSync(path.join(root, 'adir'));

  const cases: [string, () => [string, string, object?], string][] = [
    ['unknown scheme', () => ['ftp://h/x.img', dest('a')], 'INVALID_HREF'],
    ['malformed href', () => ['http://', dest('a')], 'INVALID_HREF'],
    ['not an href at all', () => ['not a url', dest('a')], 'INVALID_HREF'],
    ['relative destination', () => [server.url('/ok.img'), 'rel/a'], 'INVALID_DESTINATION'],
    [
      'missing destination folder',
      () => [server.url('/ok.img'), path.join(root, 'nope', 'a')],
      'INVALID_DESTINATION',
    ],
    [
      'destination is a folder',
      () => [server.url('/ok.img'), path.join(root, 'adir')],
      'INVALID_DESTINATION',
    ],
    [
      'file outside the allowed roots',
      () => [`file://${outside}/secret.img`, dest('a')],
      'IMAGE_REF_VALIDATION_FAILED',
    ],
    ['file:///etc/passwd', () => ['file:///etc/passwd', dest('a')], 'IMAGE_REF_VALIDATION_FAILED'],
    ['file:///dev/zero', () => ['file:///dev/zero', dest('a')], 'IMAGE_REF_VALIDATION_FAILED'],
    [
      'escaping with ..',
      () => [`file://${root}/../${path.basename(outside)}/secret.img`, dest('a')],
      'IMAGE_REF_VALIDATION_FAILED',
    ],
    [
      'a symlink out of the root',
      () => [`file://${root}/link.img`, dest('a')],
      'IMAGE_REF_VALIDATION_FAILED',
    ],
    ['a folder as a file', () => [`file://${root}/adir`, dest('a')], 'IMAGE_REF_VALIDATION_FAILED'],
    [
      'checksum of the wrong length',
      () => [server.url('/ok.img'), dest('a'), { expectedChecksum: 'sha256:abc' }],
      'IMAGE_CHECKSUM_ALGORITHM_FAILURE',
    ],
    [
      'unknown algorithm',
      () => [server.url('/ok.img'), dest('a'), { expectedChecksum: 'crc32:abcd' }],
      'IMAGE_CHECKSUM_ALGORITHM_FAILURE',
    ],
    [
      'algorithm without value',
      () => [server.url('/ok.img'), dest('a'), { expectedChecksum: 'sha256:' }],
      'IMAGE_CHECKSUM_ALGORITHM_FAILURE',
    ],
    ['a 403', () => [server.url('/forbidden'), dest('a')], 'IMAGE_NOT_FOUND'],
  ];

  it.each(cases)('%s', async (_label, args, code) => {
    server.route('/forbidden', { status: 403 });
    const [href, d, opts] = args();
    const err = await cache.fetchImage(href, d, opts).catch((e) => e);
    expect(err).toBeInstanceOf(ImageCacheError);
    expect(err.code).toBe(code);
    expect(fs.existsSync(dest('a'))).toBe(false);
    if (fs.existsSync(cache.masterDir)) expect(masters(cache)).toEqual([]);
  });

  it('never shows credentials of an href in an error', async () => {
    server.route('/private.img', { status: 404 });
    const href = `http://bob:hunter2@127.0.0.1:${server.port}/private.img?token=s3cret`;
    const err = await cache.fetchImage(href, dest('a')).catch((e) => e);
    expect(err.code).toBe('IMAGE_NOT_FOUND');
    const shown = `${err.message} ${JSON.stringify(err)} ${err.stack}`;
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toContain('s3cret');
  });

  it('refuses a cache folder that is not usable', async () => {
    const file = path.join(root, 'plain-file');
    fs.writeFileSync(file, '');
    const bad = new ImageCache({ masterDir: path.join(file, 'master') });
    const err = await bad.fetchImage(server.url('/ok.img'), dest('a')).catch((e) => e);
    expect(err.code).toBe('CACHE_FOLDER_UNUSABLE');
  });

  it('refuses expectedFormat on a cache that does not inspect images', async () => {
    const k = newCache({ validate: false });
    const err = await k.cache
      .fetchImage(server.url('/ok.img'), k.dest('a'), { expectedFormat: 'raw' })
      .catch((e) => e);
    expect(err.code).toBe('USAGE_ERROR');
  });
});

describe('a failure before the download', () => {
  it('gives its download slot back', async () => {
    const { Semaphore } = await import('@imagecache/core');
    const k = newCache({ limiter: new Semaphore(1) });
    await k.cache.start();
    const work = k.cache.folder.workDir;
    fs.rmSync(work, { recursive: true });
    fs.writeFileSync(work, 'not a folder');
    const err = await k.cache.fetchImage(server.url('/ok.img'), k.dest('a')).catch((e) => e);
    expect(err).toBeInstanceOf(ImageCacheError);
    fs.rmSync(work);
    fs.mkdirSync(work);
    const r = await k.cache.fetchImage(server.url('/ok.img'), k.dest('b'));
    expect(r.cacheHit).toBe(false);
  });
});

describe('createDestDirs', () => {
  it('creates a missing destination folder only once the request is valid', async () => {
    const k = newCache({ createDestDirs: true });
    const dir = path.join(path.dirname(k.dest('x')), 'new', 'deeper');
    const err = await k.cache.fetchImage('htp:/bad', path.join(dir, 'a')).catch((e) => e);
    expect(err.code).toBe('INVALID_HREF');
    expect(fs.existsSync(dir)).toBe(false);
    const r = await k.cache.fetchImage(server.url('/ok.img'), path.join(dir, 'a'));
    expect(r.destPath).toBe(path.join(dir, 'a'));
  });
});
