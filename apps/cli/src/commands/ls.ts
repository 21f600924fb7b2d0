import type { Command } from 'commander';
import { formatSize } from '@imagecache/config';
import type { MasterEntry } from '@imagecache/core';
import { hostConfigFrom, type CacheSelection } from '../options';
import { isRemote, requireCache, withClient, type RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export function registerLs(program: Command, ctx: CommandContext): void {
  program
    .command('ls')
    .description('list the masters of each cache, least recently used first')
    .option('--master-dir <dir>', 'master folder')
    .option('--config <file>', 'host configuration (every cache, or --cache)')
    .option('--cache <name>', 'only this cache of the configuration (with --redis: the cache to list)')
    .option('--redis <url>', "ask the host's workers through this Redis")
    .option('--redis-prefix <prefix>', 'with --redis: key prefix of the deployment (default {imagecache})')
    .option('--host <name>', 'with --redis: the host')
    .action(async (flags: CacheSelection & RemoteFlags) => {
      const listing: { cache: string; masterDir: string; masters: MasterEntry[] }[] = [];
      if (isRemote(flags)) {
        const cache = requireCache(flags);
        const one = await withClient(flags, (client, host) =>
          client.list({ host, cache, signal: ctx.signal }),
        );
        listing.push(one as unknown as (typeof listing)[number]);
      } else {
        const host = ctx.openHost(hostConfigFrom(flags));
        const caches = flags.cache ? [host.cache(flags.cache)] : host.registry.caches;
        for (const cache of caches) {
          listing.push({ cache: cache.name, masterDir: cache.masterDir, masters: await cache.list() });
        }
      }
      ctx.output.result({ caches: listing }, () =>
        listing
          .flatMap((c) => [
            `${c.cache} (${c.masterDir}): ${c.masters.length} masters, ${formatSize(c.masters.reduce((n, m) => n + m.size, 0))}`,
            ...c.masters.map(
              (m) =>
                `  ${m.name}  ${formatSize(m.size)}  links=${m.links}  used=${new Date(m.lastUsed).toISOString()}${m.href ? `  ${m.href}` : ''}`,
            ),
          ])
          .join('\n'),
      );
    });
}
