import { formatSize, parseSize } from '@imagecache/config';
import { hostConfigFrom } from '../options';
import { withHost } from '../remote';
import type { CommandContext } from '../program';
import type { CleanFlags } from './clean';

/** `imagecache clean`: one cache's clean-up, in this process or through a host's workers. */
export async function runClean(ctx: CommandContext, flags: CleanFlags): Promise<void> {
  const amount = flags.amount === undefined ? undefined : parseSize(flags.amount, '--amount');
  const { name, result } = await withHost(
    ctx,
    flags,
    () => hostConfigFrom(flags),
    async (host) => {
      const cache = host.cache(flags.cache);
      return { name: cache.name, result: await cache.cleanUp(amount, { signal: ctx.signal }) };
    },
    { needsCache: true },
  );
  ctx.output.result({ ...result, cache: name }, () => {
    const lines = result.removed.map((r) => `removed ${r.name} (${formatSize(r.size)}, ${r.reason})`);
    lines.push(`${name}: freed ${formatSize(result.freed)}, ${formatSize(result.totalSize)} left`);
    if (result.stillRequired > 0) lines.push(`could not free ${formatSize(result.stillRequired)} more`);
    return lines.join('\n');
  });
}
