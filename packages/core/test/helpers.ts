import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageCache, type ImageCacheOptions } from '@imagecache/core';
import { tmpDir } from '@imagecache/testing';

/** A cache in a fresh folder, with a destination folder beside it, and fast retries. */
export function newCache(opts: Partial<ImageCacheOptions> = {}): {
  cache: ImageCache;
  root: string;
  dest: (n: string) => string;
} {
  const root = tmpDir('imagecache-core-');
  const destDir = path.join(root, 'dest');
  fs.mkdirSync(destDir);
  const cache = new ImageCache({
    masterDir: path.join(root, 'master'),
    forceRaw: false,
    retryDelayMs: 10,
    sources: { fileRoots: [root] },
    ...opts,
  });
  return { cache, root, dest: (n) => path.join(destDir, n) };
}

/** Regular files directly in the master folder: the masters. */
export function masters(cache: ImageCache): string[] {
  return fs
    .readdirSync(cache.masterDir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort();
}

/** Everything left in the work area (must be empty after every fetch, good or bad). */
export function workLeft(cache: ImageCache): string[] {
  return fs.readdirSync(cache.folder.workDir);
}

export function ino(file: string): number {
  return fs.statSync(file).ino;
}
