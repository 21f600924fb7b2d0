import {
  configForSingleCache,
  loadConfig,
  parseDuration,
  parseSize,
  type HostConfig,
} from '@imagecache/config';
import { UsageError } from '@imagecache/errors';

/** Options every verb that works on caches shares. */
export interface CacheSelection {
  config?: string;
  cache?: string;
  masterDir?: string;
  cacheSize?: string;
  ttl?: string;
  forceRaw?: boolean;
}

/** The host configuration a command runs with: a config file, or one cache from --master-dir. */
export function hostConfigFrom(o: CacheSelection): HostConfig {
  if (o.config !== undefined) {
    if (o.masterDir !== undefined || o.cacheSize !== undefined || o.ttl !== undefined) {
      throw new UsageError(
        '--master-dir, --cache-size and --ttl apply without --config; set them in the file instead',
      );
    }
    return loadConfig({ file: o.config });
  }
  if (o.cache !== undefined) throw new UsageError('--cache needs --config');
  return configForSingleCache({
    masterDir: o.masterDir,
    cacheSize: o.cacheSize === undefined ? undefined : parseSize(o.cacheSize, '--cache-size'),
    cacheTtl: o.ttl === undefined ? undefined : parseDuration(o.ttl, '--ttl'),
    forceRaw: o.forceRaw,
  });
}
