import type { Command } from 'commander';
import { formatSize } from '@imagecache/config';
import type { MasterEntry } from '@imagecache/core';
import { hostConfigFrom, type CacheSelection } from '../options';
import type { CommandContext } from '../program';

export function registerLs(program: Command, ctx: CommandContext): void {
  program
    .command('ls')
    .description('list the masters of each cache, least recently used first')
    .option('--master-dir <dir>', 'master folder')
    .option('--config <file>', 'host configuration (every cache, or --cache)')
    .option('--cache <name>', 'only this cache of the configuration')
    .action(async (flags: CacheSelection) => {
      const host = ctx.openHost(hostConfigFrom(flags));
      const caches = flags.cache ? [host.cache(flags.cache)] : host.registry.caches;
      const listing: { cache: string; masterDir: string; masters: MasterEntry[] }[] = [];
      for (const cache of caches) {
        listing.push({ cache: cache.name, masterDir: cache.masterDir, masters: await cache.list() });
      }
      ctx.output.result({ caches: listing }, () =>
        listing
          .flatMap((c) => [
            `${c.cache} (${c.masterDir}): ${c.masters.length} masters, ${formatSize(c.masters.reduce((n, m) => n + m.size, 0))}`,
            ...c.masters.map(
              (m) =>
                `  ${m.name}  ${formatSize(m.size)}  links=${m.links}  used=${m.lastUsed.toISOString()}${m.href ? `  ${m.href}` : ''}`,
            ),
          ])
          .join('\n'),
      );
    });
}
