import type { Command } from 'commander';
import type { CleanUpResult } from '@imagecache/core';
import { formatSize, parseSize } from '@imagecache/config';
import { hostConfigFrom, type CacheSelection } from '../options';
import { isRemote, requireCache, withClient, type RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export function registerClean(program: Command, ctx: CommandContext): void {
  program
    .command('clean')
    .description(
      'evict masters unused for longer than the TTL, then the oldest while over the size (or until --amount is freed)',
    )
    .option('--master-dir <dir>', 'master folder')
    .option('--cache-size <size>', 'cache size (default 20GiB)')
    .option('--ttl <seconds>', 'TTL in seconds or units (default 7d)')
    .option('--config <file>', 'host configuration')
    .option('--cache <name>', 'cache of the configuration (default: the first)')
    .option('--amount <size>', 'free at least this much, even below the size')
    .option('--redis <url>', "ask the host's workers through this Redis")
    .option('--redis-prefix <prefix>', 'with --redis: key prefix of the deployment (default {imagecache})')
    .option('--host <name>', 'with --redis: the host')
    .action(async (flags: CacheSelection & RemoteFlags & { amount?: string }) => {
      const amount = flags.amount === undefined ? undefined : parseSize(flags.amount, '--amount');
      let name: string;
      let result: CleanUpResult;
      if (isRemote(flags)) {
        name = requireCache(flags);
        result = (await withClient(flags, (client, host) =>
          client.cleanUp({ host, cache: name, amount, signal: ctx.signal }),
        )) as unknown as CleanUpResult;
      } else {
        const cache = ctx.openHost(hostConfigFrom(flags)).cache(flags.cache);
        name = cache.name;
        result = await cache.cleanUp(amount);
      }
      ctx.output.result({ ...result, cache: name }, () => {
        const lines = result.removed.map((r) => `removed ${r.name} (${formatSize(r.size)}, ${r.reason})`);
        lines.push(`${name}: freed ${formatSize(result.freed)}, ${formatSize(result.totalSize)} left`);
        if (result.stillRequired > 0) lines.push(`could not free ${formatSize(result.stillRequired)} more`);
        return lines.join('\n');
      });
    });
}
