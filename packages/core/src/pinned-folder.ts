import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidDestination } from '@imagecache/errors';

const PROC_FD = '/proc/self/fd';

/**
 * A destination folder held open while a file is placed in it. Names are reached through the open descriptor
 * (`/proc/self/fd/N/name`), so once the folder is proved to be the one that was checked, a symlink swapped into
 * its path can no longer redirect the link, copy or rename to another folder (a cache's master folder, /etc).
 */
export class PinnedFolder {
  private constructor(
    private readonly fd: number,
    /** The prefix names are reached through. */
    private readonly via: string,
  ) {}

  /** Opens `folder` (canonical: no symlink in it) and proves it is still that folder. */
  static open(folder: string): PinnedFolder {
    let fd: number;
    try {
      // O_NOFOLLOW: the last component swapped for a link fails; the readlink below catches the others.
      fd = fs.openSync(folder, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    } catch (err) {
      throw new InvalidDestination(
        `destination folder ${folder} changed since it was checked (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        { dest: folder },
      );
    }
    const via = path.join(PROC_FD, String(fd));
    let actual: string | undefined;
    try {
      actual = fs.readlinkSync(via);
    } catch {
      actual = undefined; // no /proc: the path is used as it is, the check just made being the last word
    }
    if (actual === undefined) return new PinnedFolder(fd, folder);
    if (actual !== folder) {
      fs.closeSync(fd);
      throw new InvalidDestination(`destination folder ${folder} changed since it was checked`, {
        dest: folder,
      });
    }
    return new PinnedFolder(fd, via);
  }

  /** The path that reaches `name` inside the pinned folder. */
  entry(name: string): string {
    return path.join(this.via, name);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
