import type { Command } from 'commander';
import type { FetchRequestOptions } from '@imagecache/contract';
import type { CacheSelection } from '../options';
import type { RemoteFlags } from '../remote';
import type { CommandContext } from '../program';

export interface FetchFlags extends CacheSelection, RemoteFlags {
  expectedFormat?: string;
  checksum?: string;
  checksumAlgo?: string;
  quiet?: boolean;
}

/**
 * The fetch options the flags give. Typed with every option of the request (@imagecache/contract): an option
 * added there is a compile error here until it has its flag.
 */
export function fetchOptionsFrom(flags: FetchFlags): {
  [K in keyof Required<FetchRequestOptions>]: FetchRequestOptions[K] | undefined;
} {
  return {
    forceRaw: flags.forceRaw,
    expectedFormat: flags.expectedFormat,
    expectedChecksum: flags.checksum,
    expectedChecksumAlgo: flags.checksumAlgo,
  };
}

export function registerFetch(program: Command, ctx: CommandContext): void {
  program
    .command('fetch')
    .description('make HREF appear at DEST through the master cache (hard link, or copy across filesystems)')
    .argument(
      '<href>',
      'http(s):// URL, file:// path, image-service UUID (or glance://ID), or oci:// reference',
    )
    .argument('<dest>', 'absolute destination path')
    .option(
      '--master-dir <dir>',
      'master folder (default $IMAGECACHE_MASTER_DIR or /var/lib/imagecache/master_images)',
    )
    .option('--cache-size <size>', 'cache size, bytes or units such as 20GiB (default 20GiB)')
    .option('--ttl <seconds>', 'seconds (or 7d, 12h) an unused master is kept (default 7d)')
    .option('--force-raw', 'convert to raw (the master gets .converted); the default')
    .option('--no-force-raw', 'keep the image in its format')
    .option('--expected-format <fmt>', 'refuse an image of another format')
    .option('--checksum <value>', 'algo:value, a bare md5/sha256/sha512 value, or a URL of a checksum file')
    .option('--checksum-algo <algo>', 'algorithm of a bare --checksum value')
    .option('--config <file>', 'host configuration (JSON or YAML)')
    .option('--cache <name>', 'cache of the configuration to use (default: the first)')
    .option('--redis <url>', "ask the host's workers through this Redis instead of fetching in this process")
    .option('--redis-prefix <prefix>', 'with --redis: key prefix of the deployment (default {imagecache})')
    .option('--host <name>', 'with --redis: the host whose workers fetch (the destination is on that host)')
    .option('-q, --quiet', 'no progress output')
    // Loaded when the verb runs: the engine costs `--help` and the other verbs nothing.
    .action(async (href: string, dest: string, flags: FetchFlags) =>
      (await import('./fetch-run')).runFetch(ctx, href, dest, flags),
    );
}
