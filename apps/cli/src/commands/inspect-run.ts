import { formatSize } from '@imagecache/config';
import { ImageCacheError, UnsafeImage, withHref } from '@imagecache/errors';
import { inspectFormat } from '@imagecache/formats';
import type { CommandContext } from '../program';

/** `imagecache inspect FILE`: the real format and whether it is safe. */
export async function runInspect(ctx: CommandContext, file: string): Promise<void> {
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
}
