import type { Command } from 'commander';
import { formatSize, loadConfig } from '@imagecache/config';
import type { CommandContext } from '../program';

export function registerCleanCaches(program: Command, ctx: CommandContext): void {
  program
    .command('clean-caches')
    .description("free room in DIRECTORY for the images' download sizes, cleaning the caches on its filesystem by priority")
    .argument('<directory>', 'folder the images will be written to')
    .argument('<href...>', 'images that will be fetched')
    .requiredOption('--config <file>', 'host configuration (its caches are the ones cleaned)')
    .action(async (directory: string, hrefs: string[], flags: { config: string }) => {
      const host = ctx.openHost(loadConfig({ file: flags.config }));
      const report = await host.registry.cleanUpCaches(
        directory,
        hrefs.map((href) => ({ href })),
        ctx.signal,
      );
      ctx.output.result(report, () =>
        [
          ...report.cleaned.map((c) => `cleaned ${c.cache}: freed ${formatSize(c.result.freed)}`),
          `${directory}: ${formatSize(report.required)} required, ${formatSize(report.free)} free`,
        ].join('\n'),
      );
    });
}
