import * as path from 'node:path';
import { CacheRegistry, ImageCache } from '@imagecache/core';
import { UsageError } from '@imagecache/errors';
import { tmpDir } from '@imagecache/testing';

test('a second cache of the same name is a typed USAGE_ERROR, and the first stays', () => {
  const root = tmpDir();
  const reg = new CacheRegistry().register(new ImageCache({ name: 'a', masterDir: path.join(root, 'a') }));
  const twice = () => reg.register(new ImageCache({ name: 'a', masterDir: path.join(root, 'b') }));
  expect(twice).toThrow(UsageError);
  expect(twice).toThrow('cache a is already registered');
  expect(reg.caches.map((c) => c.masterDir)).toEqual([path.join(root, 'a')]);
});
