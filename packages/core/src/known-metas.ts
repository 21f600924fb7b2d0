import type * as fs from 'node:fs';
import { sameIdentity } from './master-identity';
import type { MasterMeta } from './result';

/** Masters whose metadata is kept at most (the least recently read goes first). */
const KNOWN_MAX = 1024;

/**
 * Metadata of masters already read, by name, served only while the master is still the file it records (same
 * device, inode, size and mtime). Metadata is written once per published file (publish, adoption) and goes with
 * it: a master that is still the recorded file has the metadata read before, so a warm hit skips reading it
 * again (four syscalls and a JSON parse). Metadata without an identity (an adopted master not yet verified) is
 * never kept.
 */
export class KnownMetas {
  private readonly byName = new Map<string, MasterMeta>();

  /** The metadata of `name` if it was read before and `master` (its lstat now) is the file it records. */
  get(name: string, master: fs.Stats): MasterMeta | undefined {
    const meta = this.byName.get(name);
    if (!meta) return undefined;
    if (sameIdentity(meta.identity!, master)) return meta;
    this.byName.delete(name);
    return undefined;
  }

  remember(name: string, meta: MasterMeta | undefined): void {
    if (!meta?.identity) return;
    this.byName.delete(name);
    if (this.byName.size >= KNOWN_MAX) this.byName.delete(this.byName.keys().next().value!);
    this.byName.set(name, meta);
  }
}
