import type { ImageBody, ImageInfo, ImageSource, OpenOptions, ShowOptions } from '@imagecache/sources';

/**
 * One host's master behind several peer services (one per worker replica, serving the same folders, so the same
 * file and ETag: a resume may move between them): each request goes to the first that answers. A replica that
 * died is passed over at the cost of a refused connection instead of the whole host being skipped.
 */
export class ReplicaSource implements ImageSource {
  readonly kind = 'http' as const;
  readonly href: string;
  readonly safeHref: string;
  readonly imageId: undefined = undefined;

  constructor(private readonly replicas: readonly ImageSource[]) {
    if (replicas.length === 0) throw new Error('a ReplicaSource needs at least one source');
    this.href = replicas[0]!.href;
    this.safeHref = replicas[0]!.safeHref;
  }

  show(opts?: ShowOptions): Promise<ImageInfo> {
    return this.first((s) => s.show(opts), opts?.signal);
  }

  open(opts?: OpenOptions): Promise<ImageBody> {
    return this.first((s) => s.open(opts), opts?.signal);
  }

  close(): void {
    for (const s of this.replicas) s.close?.();
  }

  /** The first replica's answer; the last one's error when none answers. */
  private async first<T>(ask: (s: ImageSource) => Promise<T>, signal?: AbortSignal): Promise<T> {
    let last: unknown;
    for (const s of this.replicas) {
      try {
        return await ask(s);
      } catch (err) {
        if (signal?.aborted) throw err;
        last = err;
      }
    }
    throw last;
  }
}
