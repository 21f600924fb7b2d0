import type { Command } from 'commander';
import type { CacheSelection } from '../options';
import type { RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export type CleanFlags = CacheSelection & RemoteFlags & { amount?: string };

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
    .action(async (flags: CleanFlags) => (await import('./clean-run')).runClean(ctx, flags));
}
