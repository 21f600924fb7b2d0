import type { CleanUpResult } from '@imagecache/core';
import { formatSize, parseSize } from '@imagecache/config';
import { hostConfigFrom } from '../options';
import { isRemote, requireCache, withClient } from '../remote';
import type { CommandContext } from '../program';
import type { CleanFlags } from './clean';

/** `imagecache clean`: one cache's clean-up, in this process or through a host's workers. */
export async function runClean(ctx: CommandContext, flags: CleanFlags): Promise<void> {
  const amount = flags.amount === undefined ? undefined : parseSize(flags.amount, '--amount');
  let name: string;
  let result: CleanUpResult;
  if (isRemote(flags)) {
    name = requireCache(flags);
    result = (await withClient(flags, (client, host) =>
      client.cleanUp({ host, cache: name, amount, signal: ctx.signal }),
    )) as unknown as CleanUpResult;
  } else {
    const cache = (await ctx.openHost(hostConfigFrom(flags))).cache(flags.cache);
    name = cache.name;
    result = await cache.cleanUp(amount);
  }
  ctx.output.result({ ...result, cache: name }, () => {
    const lines = result.removed.map((r) => `removed ${r.name} (${formatSize(r.size)}, ${r.reason})`);
    lines.push(`${name}: freed ${formatSize(result.freed)}, ${formatSize(result.totalSize)} left`);
    if (result.stillRequired > 0) lines.push(`could not free ${formatSize(result.stillRequired)} more`);
    return lines.join('\n');
  });
}
