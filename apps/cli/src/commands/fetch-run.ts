import { formatSize } from '@imagecache/config';
import type { FetchResult } from '@imagecache/core';
import { createProgress } from '../progress';
import { hostConfigFrom } from '../options';
import { withHost } from '../remote';
import type { CommandContext } from '../program';
import { fetchOptionsFrom, type FetchFlags } from './fetch';

/** `imagecache fetch HREF DEST`: in this process, or through a host's workers with --redis. */
export async function runFetch(
  ctx: CommandContext,
  href: string,
  dest: string,
  flags: FetchFlags,
): Promise<void> {
  const result = await withHost(
    ctx,
    flags,
    () => hostConfigFrom(flags),
    async (host) => {
      const cache = host.cache(flags.cache);
      const progress = createProgress({ quiet: Boolean(flags.quiet), label: 'fetch' });
      try {
        return await cache.fetchImage(href, dest, {
          ...fetchOptionsFrom(flags),
          signal: ctx.signal,
          onProgress: (p) => progress.update(p),
        });
      } finally {
        progress.stop();
      }
    },
    { needsCache: true },
  );
  ctx.output.result(result, () => describe(result));
}

function describe(r: FetchResult): string {
  const how = r.cacheHit ? 'cache hit' : `downloaded ${formatSize(r.bytesDownloaded)}`;
  const placed = r.placedBy === 'already' ? 'already in place' : `placed by ${r.placedBy}`;
  const sum = r.checksum ? ` ${r.checksum.algo}:${r.checksum.value}` : '';
  return `${r.destPath}: ${how}, ${placed}, ${formatSize(r.size)}${sum} (${Math.round(r.durations.total)} ms)`;
}
