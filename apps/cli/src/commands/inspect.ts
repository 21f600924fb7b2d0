import type { Command } from 'commander';
import { formatSize } from '@imagecache/config';
import { ImageCacheError, UnsafeImage, withHref } from '@imagecache/errors';
import { inspectFormat } from '@imagecache/formats';
import type { CommandContext } from '../program';

export function registerInspect(program: Command, ctx: CommandContext): void {
  program
    .command('inspect')
    .description("tell an image's real format from its bytes and whether it is safe (exit 41 when it is not)")
    .argument('<file>', 'image file')
    .action(async (file: string) => {
      const report = await inspectFormat(file, { signal: ctx.signal }).catch((err) => {
        throw err instanceof ImageCacheError ? withHref(err, file) : err;
      });
      ctx.output.result(report, () =>
        [
          `${file}: ${report.format}, virtual size ${formatSize(report.virtualSize)}, file ${formatSize(report.actualSize)}`,
          report.safe ? 'safe' : `UNSAFE: ${report.unsafeReasons.join('; ')}`,
        ].join('\n'),
      );
      if (!report.safe) ctx.exitCode = new UnsafeImage('unsafe image').code;
    });
}
