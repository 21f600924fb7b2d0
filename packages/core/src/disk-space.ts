import * as fs from 'node:fs';

/** Bytes available to unprivileged users on the filesystem of `dir` (statvfs f_bavail × f_bsize). */
export async function freeSpace(dir: string): Promise<number> {
  const s = await fs.promises.statfs(dir);
  return s.bavail * s.bsize;
}

export async function deviceOf(dir: string): Promise<number> {
  return (await fs.promises.stat(dir)).dev;
}
