import * as fs from 'node:fs';

// The hit path, and a miss's bookkeeping, are made of metadata syscalls (stat, a small read, link, unlink, a short
// listing) that take microseconds on a local filesystem. Through fs.promises each costs a round trip to the libuv
// pool, 10–20× the syscall (50-90 us of wake-ups on this project's VMs): these synchronous forms keep a hit near
// the cost of its one HEAD and a small miss near its download (README, "How it behaves").

export function statOrUndefined(file: string): fs.Stats | undefined {
  return fs.statSync(file, { throwIfNoEntry: false });
}

export function lstatOrUndefined(file: string): fs.Stats | undefined {
  return fs.lstatSync(file, { throwIfNoEntry: false });
}

/** One unlink(2); a file already gone is fine (`fs.rmSync` would lstat first and take its recursive remover). */
export function unlinkIfThere(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The names in a folder expected to be short (locks held, work in progress); none when it can't be read. */
export function listOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** A small JSON file's content, or undefined when it is missing or unreadable. */
export function readJsonOrUndefined<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
