import { formatSize } from '@imagecache/config';
import type { FetchResult, FetchStage } from '@imagecache/core';
import { createProgress } from '../progress';
import { hostConfigFrom } from '../options';
import { isRemote, requireCache, withClient } from '../remote';
import type { CommandContext } from '../program';
import type { FetchFlags } from './fetch';

/** `imagecache fetch HREF DEST`: in this process, or through a host's workers with --redis. */
export async function runFetch(
  ctx: CommandContext,
  href: string,
  dest: string,
  flags: FetchFlags,
): Promise<void> {
  if (isRemote(flags)) {
    const progress = createProgress({ quiet: Boolean(flags.quiet), label: 'fetch' });
    try {
      const result = await withClient(flags, (client, host) =>
        client.fetchImage({
          host,
          cache: requireCache(flags),
          href,
          dest,
          forceRaw: flags.forceRaw,
          expectedFormat: flags.expectedFormat,
          expectedChecksum: flags.checksum,
          expectedChecksumAlgo: flags.checksumAlgo,
          signal: ctx.signal,
          onProgress: (p) =>
            progress.update({ stage: p.stage as FetchStage, bytes: p.bytes, totalBytes: p.totalBytes }),
        }),
      );
      progress.stop();
      ctx.output.result(result, () => describe(result as unknown as FetchResult));
    } finally {
      progress.stop();
    }
    return;
  }
  const config = hostConfigFrom(flags);
  const host = await ctx.openHost(config);
  const cache = host.cache(flags.cache);
  const progress = createProgress({ quiet: Boolean(flags.quiet), label: 'fetch' });
  try {
    const result = await cache.fetchImage(href, dest, {
      forceRaw: flags.forceRaw,
      expectedFormat: flags.expectedFormat,
      expectedChecksum: flags.checksum,
      expectedChecksumAlgo: flags.checksumAlgo,
      signal: ctx.signal,
      onProgress: (p) => progress.update(p),
    });
    progress.stop();
    ctx.output.result(result, () => describe(result));
  } finally {
    progress.stop();
  }
}

function describe(r: FetchResult): string {
  const how = r.cacheHit ? 'cache hit' : `downloaded ${formatSize(r.bytesDownloaded)}`;
  const placed = r.placedBy === 'already' ? 'already in place' : `placed by ${r.placedBy}`;
  const sum = r.checksum ? ` ${r.checksum.algo}:${r.checksum.value}` : '';
  return `${r.destPath}: ${how}, ${placed}, ${formatSize(r.size)}${sum} (${Math.round(r.durations.total)} ms)`;
}
