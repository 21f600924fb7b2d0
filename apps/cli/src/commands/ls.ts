import type { Command } from 'commander';
import type { CacheSelection } from '../options';
import type { RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export type LsFlags = CacheSelection & RemoteFlags & { fleet?: boolean };

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
    .option('--fleet', "which hosts of the fleet hold which image (through --redis, or the config's redis)")
    .action(async (flags: LsFlags) => (await import('./ls-run')).runLs(ctx, flags));
}
