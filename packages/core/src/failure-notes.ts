import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  deserializeError,
  ImageDownloadFailed,
  type ImageCacheError,
  type SerializedError,
} from '@imagecache/errors';
import { readJsonOrUndefined, unlinkIfThere } from './metadata-io';

const SUFFIX = '.failed';
/** A note older than this is ignored (and removed): it speaks for the download that just ended, not for later. */
export const FAILURE_NOTE_MS = 60_000;

interface Note {
  at: number;
  error: SerializedError;
}

/**
 * The final failure of a single-flight download, noted beside its lock for the callers that were waiting on it
 * (in this process or another): they get that error instead of downloading again in turn, so the retries
 * belong to the one download (issue 11, X4). Only source failures (`ImageDownloadFailed`) are shared: a
 * caller's own checksum, credentials or cancel say nothing about another caller's fetch.
 */
export class FailureNotes {
  constructor(private readonly dir: string) {}

  /** Whether `err` is the source's failure, which every waiter would meet too. */
  static shareable(err: unknown): err is ImageDownloadFailed {
    return err instanceof ImageDownloadFailed;
  }

  async record(name: string, err: ImageCacheError): Promise<void> {
    const note: Note = { at: Date.now(), error: err.toJSON() };
    const file = this.file(name);
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(note));
    await fs.promises.rename(tmp, file);
  }

  /**
   * The failure noted for `name` since `since` (ms since the epoch: when the caller began to wait), as a final
   * error (not retryable: the download it reports has had its retries); undefined when none.
   */
  async since(name: string, since: number): Promise<ImageCacheError | undefined> {
    const file = this.file(name);
    // Nearly always absent: one failed open(2), on this thread (metadata-io.ts).
    const note = readJsonOrUndefined<Note>(file);
    if (!note) return undefined;
    if (!(note.at >= since) || Date.now() - note.at > FAILURE_NOTE_MS) {
      if (Date.now() - note.at > FAILURE_NOTE_MS) await fs.promises.rm(file, { force: true });
      return undefined;
    }
    const shared = note.error;
    return deserializeError({
      ...shared,
      message: `${shared.message} (the download this fetch waited for failed)`,
      retryable: false,
      details: { ...shared.details, sharedFailure: true },
    });
  }

  /** A download of `name` succeeded: its old failure no longer speaks for it. */
  async clear(name: string): Promise<void> {
    unlinkIfThere(this.file(name));
  }

  private file(name: string): string {
    return path.join(this.dir, name + SUFFIX);
  }
}
