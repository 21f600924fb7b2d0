import { constants } from 'node:fs';
import * as fs from 'node:fs';
import { sameIdentity, isMasterName, type CacheFolder, type MasterMeta } from '@imagecache/core';

/** Why a master is not served (logged, and told to the client in `x-imagecache-reason`). */
export type RefusalReason =
  'not-a-master-name' | 'not-published' | 'not-a-regular-file' | 'changed-since-publish';

/** A master opened for serving: the descriptor is the file checked, whatever happens to the name meanwhile. */
export interface OpenedMaster {
  handle: fs.promises.FileHandle;
  stat: fs.Stats;
  /** A strong validator of this very file (resumes with If-Range stay on it). */
  etag: string;
  /** Hex sha256 of the master's bytes, when its metadata vouches for one. */
  sha256?: string;
}

export type OpenResult = { ok: true; master: OpenedMaster } | { ok: false; reason: RefusalReason };

// O_NONBLOCK: a FIFO planted under a master's name must not hang the open (no effect on a regular file).
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The sha256 of the master's own bytes, if its metadata has one: the download's digest covers the master only
 * when it was published as downloaded (neither converted nor decompressed; metadata that does not say whether it
 * was decompressed vouches for nothing).
 */
export function masterSha256(meta: MasterMeta): string | undefined {
  if (meta.checksum?.algo !== 'sha256' || meta.converted !== false || meta.decompressed !== false)
    return undefined;
  return /^[0-9a-f]{64}$/.test(meta.checksum.value) ? meta.checksum.value : undefined;
}

async function readMeta(folder: CacheFolder, name: string): Promise<MasterMeta | undefined> {
  try {
    const text = await fs.promises.readFile(folder.metaPath(name), { encoding: 'utf8', flag: OPEN_FLAGS });
    return JSON.parse(text) as MasterMeta;
  } catch {
    return undefined;
  }
}

/**
 * Opens the published master `name` of `folder`, or says why it won't be served. Only a name the engine gives
 * masters; only a master whose metadata records its identity at publish; opened without following a symlink,
 * then checked on the descriptor: a regular file, the same inode, size and mtime as recorded. So a work file, a
 * metadata file, a symlink (to anything), a master being replaced or one written to since (in place, through a
 * hard-linked destination) is never served.
 */
export async function openPublishedMaster(folder: CacheFolder, name: string): Promise<OpenResult> {
  if (!isMasterName(name)) return { ok: false, reason: 'not-a-master-name' };
  const meta = await readMeta(folder, name);
  if (!meta?.identity) return { ok: false, reason: 'not-published' };
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(folder.masterPath(name), OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ELOOP' ? 'not-a-regular-file' : 'not-published' };
  }
  let reason: RefusalReason = 'not-published';
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) reason = 'not-a-regular-file';
    else if (!sameIdentity(meta.identity, stat) || meta.size !== stat.size) reason = 'changed-since-publish';
    else return { ok: true, master: { handle, stat, etag: etagOf(stat), sha256: masterSha256(meta) } };
  } catch {
    // an fstat that fails: not served
  }
  await handle.close();
  return { ok: false, reason };
}

function etagOf(stat: fs.Stats): string {
  const mtimeUs = Math.round(stat.mtimeMs * 1000);
  return `"${stat.dev.toString(36)}-${stat.ino.toString(36)}-${stat.size.toString(36)}-${mtimeUs.toString(36)}"`;
}
