import { formatSize, loadConfig } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { CommandContext } from '../program';
import { withHost } from '../remote';
import type { CleanCachesFlags } from './clean-caches';

/** `imagecache clean-caches DIRECTORY HREF...`: room for the images, cleaning the host's caches by priority. */
export async function runCleanCaches(
  ctx: CommandContext,
  directory: string,
  hrefs: string[],
  flags: CleanCachesFlags,
): Promise<void> {
  const report = await withHost(
    ctx,
    flags,
    () => {
      if (!flags.config) throw new UsageError('clean-caches needs --config (or --redis and --host)');
      return loadConfig({ file: flags.config });
    },
    (host) =>
      host.cleanUpCaches(
        directory,
        hrefs.map((href) => ({ href })),
        { signal: ctx.signal },
      ),
  );
  ctx.output.result(report, () =>
    [
      ...report.cleaned.map((c) => `cleaned ${c.cache}: freed ${formatSize(c.result.freed)}`),
      `${directory}: ${formatSize(report.required)} required, ${formatSize(report.free)} free`,
    ].join('\n'),
  );
}
