import { formatSize } from '@imagecache/config';
import type { CacheListing } from '@imagecache/core';
import { hostConfigFrom } from '../options';
import { withHost } from '../remote';
import type { CommandContext } from '../program';
import type { LsFlags } from './ls';

/** `imagecache ls`: the masters of each cache, least recently used first. */
export async function runLs(ctx: CommandContext, flags: LsFlags): Promise<void> {
  if (flags.fleet) return (await import('./ls-fleet-run')).runLsFleet(ctx, flags);
  const listing = await withHost(
    ctx,
    flags,
    () => hostConfigFrom(flags),
    async (host) => {
      const caches = flags.cache ? [host.cache(flags.cache)] : host.caches;
      const out: CacheListing[] = [];
      for (const cache of caches) out.push(await cache.listing({ signal: ctx.signal }));
      return out;
    },
    { needsCache: true },
  );
  ctx.output.result({ caches: listing }, () =>
    listing
      .flatMap((c) => {
        const masters = c.masters.filter((m) => !m.foreign);
        const foreign = c.masters.filter((m) => m.foreign);
        // The folder's size counts every file's allocated bytes, foreign ones included.
        const total = c.masters.reduce((n, m) => n + (m.allocated ?? m.size), 0);
        return [
          `${c.cache} (${c.masterDir}): ${masters.length} masters, ${foreign.length} foreign, ${formatSize(total)} on disk`,
          ...masters.map(
            (m) =>
              `  ${m.name}  ${formatSize(m.size)}  links=${m.links}  used=${new Date(m.lastUsed).toISOString()}${m.href ? `  ${m.href}` : ''}`,
          ),
          ...foreign.map(
            (m) =>
              `  ${m.name}  ${formatSize(m.size)}  foreign: not a master, never evicted, counts towards the folder's size`,
          ),
        ];
      })
      .join('\n'),
  );
}
