import { formatSize } from '@imagecache/config';
import type { MasterEntry } from '@imagecache/core';
import { hostConfigFrom } from '../options';
import { isRemote, requireCache, withClient } from '../remote';
import type { CommandContext } from '../program';
import type { LsFlags } from './ls';

/** `imagecache ls`: the masters of each cache, least recently used first. */
export async function runLs(ctx: CommandContext, flags: LsFlags): Promise<void> {
  if (flags.fleet) return (await import('./ls-fleet-run')).runLsFleet(ctx, flags);
  const listing: { cache: string; masterDir: string; masters: MasterEntry[] }[] = [];
  if (isRemote(flags)) {
    const cache = requireCache(flags);
    const one = await withClient(flags, (client, host) => client.list({ host, cache, signal: ctx.signal }));
    listing.push(one as unknown as (typeof listing)[number]);
  } else {
    const host = await ctx.openHost(hostConfigFrom(flags));
    const caches = flags.cache ? [host.cache(flags.cache)] : host.registry.caches;
    for (const cache of caches) {
      listing.push({ cache: cache.name, masterDir: cache.masterDir, masters: await cache.list() });
    }
  }
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
