import * as fs from 'node:fs';

// statfs(2) and stat(2) on this thread: each a few microseconds, against 50-90 us of wake-ups for a round trip
// through libuv's pool (README, "How it behaves": small metadata calls stay off the pool). Still async to callers.

/** Bytes available to unprivileged users on the filesystem of `dir` (statvfs f_bavail × f_bsize). */
export async function freeSpace(dir: string): Promise<number> {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

export async function deviceOf(dir: string): Promise<number> {
  return fs.statSync(dir).dev;
}
