import type { CheckedDestination } from './destination-policy';
import { lstatOrUndefined } from './metadata-io';
import { PinnedFolder } from './pinned-folder';

/**
 * A hit's work on the destination, done while the HEAD is out instead of after its answer: the folder pinned
 * (proved to be the one checked, as place() would) and a look at the destination's name in it. Only an absence is
 * trusted later (a name made since is replaced by the link as any other); something found there is looked at
 * again when placing. Never throws: whatever fails here is left to place(), which does it again and says why.
 */
export class EarlyDestination {
  private closed = false;

  private constructor(
    readonly pinned: PinnedFolder,
    /** Nothing had the destination's name. */
    readonly absent: boolean,
  ) {}

  static look(target: CheckedDestination): EarlyDestination | undefined {
    let pinned: PinnedFolder;
    try {
      pinned = PinnedFolder.open(target.folder);
    } catch {
      return undefined;
    }
    let absent = false;
    try {
      absent = lstatOrUndefined(pinned.entry(target.name)) === undefined;
    } catch {
      // looked at again when placing
    }
    return new EarlyDestination(pinned, absent);
  }

  /** Closes the pinned folder; once only, whoever calls. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pinned.close();
  }
}
