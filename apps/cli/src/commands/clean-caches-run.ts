import { formatSize, loadConfig } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { SpaceReport } from '@imagecache/core';
import type { CommandContext } from '../program';
import { isRemote, withClient } from '../remote';
import type { CleanCachesFlags } from './clean-caches';

/** `imagecache clean-caches DIRECTORY HREF...`: room for the images, cleaning the host's caches by priority. */
export async function runCleanCaches(
  ctx: CommandContext,
  directory: string,
  hrefs: string[],
  flags: CleanCachesFlags,
): Promise<void> {
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
    const host = await ctx.openHost(loadConfig({ file: flags.config }));
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
}
