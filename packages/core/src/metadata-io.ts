import * as fs from 'node:fs';

// The hit path is made of metadata syscalls (stat, a small read, link) that take microseconds on a local
// filesystem. Through fs.promises each costs a round trip to the libuv pool, 10–20× the syscall, and a
// warm hit does about eight of them: these synchronous forms keep a hit near the cost of its one HEAD.

export function statOrUndefined(file: string): fs.Stats | undefined {
  return fs.statSync(file, { throwIfNoEntry: false });
}

export function lstatOrUndefined(file: string): fs.Stats | undefined {
  return fs.lstatSync(file, { throwIfNoEntry: false });
}

/** A small JSON file's content, or undefined when it is missing or unreadable. */
export function readJsonOrUndefined<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
