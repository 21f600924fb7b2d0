import type { Command } from 'commander';
import type { RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export type CleanCachesFlags = RemoteFlags & { config?: string };

export function registerCleanCaches(program: Command, ctx: CommandContext): void {
  program
    .command('clean-caches')
    .description(
      "free room in DIRECTORY for the images' download sizes, cleaning the caches on its filesystem by priority",
    )
    .argument('<directory>', 'folder the images will be written to')
    .argument('<href...>', 'images that will be fetched')
    .option('--config <file>', 'host configuration (its caches are the ones cleaned)')
    .option('--redis <url>', "ask the host's workers through this Redis")
    .option('--redis-prefix <prefix>', 'with --redis: key prefix of the deployment (default {imagecache})')
    .option('--host <name>', 'with --redis: the host')
    .action(async (directory: string, hrefs: string[], flags: CleanCachesFlags) =>
      (await import('./clean-caches-run')).runCleanCaches(ctx, directory, hrefs, flags),
    );
}
