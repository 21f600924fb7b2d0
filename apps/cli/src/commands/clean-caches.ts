import type { Command } from 'commander';
import { formatSize, loadConfig } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { SpaceReport } from '@imagecache/core';
import type { CommandContext } from '../program';
import { isRemote, withClient, type RemoteFlags } from '../remote';

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
    .action(async (directory: string, hrefs: string[], flags: RemoteFlags & { config?: string }) => {
      let report: SpaceReport;
      if (isRemote(flags)) {
        report = (await withClient(flags, (client, host) =>
          client.cleanUpCaches({
            host,
            directory,
            images: hrefs.map((href) => ({ href })),
            signal: ctx.signal,
          }),
        )) as unknown as SpaceReport;
      } else {
        if (!flags.config) throw new UsageError('clean-caches needs --config (or --redis and --host)');
        const host = ctx.openHost(loadConfig({ file: flags.config }));
        report = await host.registry.cleanUpCaches(
          directory,
          hrefs.map((href) => ({ href })),
          ctx.signal,
        );
      }
      ctx.output.result(report, () =>
        [
          ...report.cleaned.map((c) => `cleaned ${c.cache}: freed ${formatSize(c.result.freed)}`),
          `${directory}: ${formatSize(report.required)} required, ${formatSize(report.free)} free`,
        ].join('\n'),
      );
    });
}
