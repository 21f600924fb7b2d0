import type { Command } from 'commander';
import { formatSize, parseSize } from '@imagecache/config';
import { hostConfigFrom, type CacheSelection } from '../options';
import type { CommandContext } from '../program';

export function registerClean(program: Command, ctx: CommandContext): void {
  program
    .command('clean')
    .description('evict masters unused for longer than the TTL, then the oldest while over the size (or until --amount is freed)')
    .option('--master-dir <dir>', 'master folder')
    .option('--cache-size <size>', 'cache size (default 20GiB)')
    .option('--ttl <seconds>', 'TTL in seconds or units (default 7d)')
    .option('--config <file>', 'host configuration')
    .option('--cache <name>', 'cache of the configuration (default: the first)')
    .option('--amount <size>', 'free at least this much, even below the size')
    .action(async (flags: CacheSelection & { amount?: string }) => {
      const cache = ctx.openHost(hostConfigFrom(flags)).cache(flags.cache);
      const amount = flags.amount === undefined ? undefined : parseSize(flags.amount, '--amount');
      const result = await cache.cleanUp(amount);
      ctx.output.result({ cache: cache.name, ...result }, () => {
        const lines = result.removed.map((r) => `removed ${r.name} (${formatSize(r.size)}, ${r.reason})`);
        lines.push(`${cache.name}: freed ${formatSize(result.freed)}, ${formatSize(result.totalSize)} left`);
        if (result.stillRequired > 0) lines.push(`could not free ${formatSize(result.stillRequired)} more`);
        return lines.join('\n');
      });
    });
}
