import { fetchOptionsOf } from '@imagecache/contract';
import type {
  CacheFetchOptions,
  CacheHandle,
  CacheListing,
  CallOptions,
  CleanUpResult,
  FetchResult,
  FetchStage,
} from '@imagecache/core';
import type { ImageCacheClient } from './image-cache-client';

/**
 * One cache of a host, served by that host's workers: the engine's `CacheHandle`, each call a job. It answers
 * with the engine's types (what the worker's `ImageCache` returned); a signal cancels the call's job.
 */
export class RemoteCache implements CacheHandle {
  constructor(
    private readonly client: ImageCacheClient,
    readonly host: string,
    readonly name: string,
  ) {}

  fetchImage(href: string, dest: string, opts: CacheFetchOptions = {}): Promise<FetchResult> {
    const { onProgress } = opts;
    return this.client.fetchImage({
      host: this.host,
      cache: this.name,
      href,
      dest,
      ...fetchOptionsOf(opts),
      auth: opts.auth,
      signal: opts.signal,
      // The worker reports the engine's stages (its StageReporter): the job's progress carries them as text.
      onProgress:
        onProgress &&
        ((p) => onProgress({ stage: p.stage as FetchStage, bytes: p.bytes, totalBytes: p.totalBytes })),
    });
  }

  cleanUp(amount?: number, opts: CallOptions = {}): Promise<CleanUpResult> {
    return this.client.cleanUp({ host: this.host, cache: this.name, amount, signal: opts.signal });
  }

  async listing(opts: CallOptions = {}): Promise<CacheListing> {
    const listed = await this.client.list({ host: this.host, cache: this.name, signal: opts.signal });
    return { ...listed, masters: listed.masters.map((m) => ({ ...m, lastUsed: new Date(m.lastUsed) })) };
  }
}
