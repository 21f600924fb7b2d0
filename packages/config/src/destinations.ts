import { ConfigError } from '@imagecache/errors';
import type { HostConfig } from './schema';

/**
 * The worker and the API take destinations from anyone who can reach the queue or the API, and run as the
 * owner of the caches: they refuse to start unless the configuration says where images may be written
 * (`destinations.allowedRoots`), or says explicitly that any folder will do (`destinations.unrestricted`).
 * The embedded CLI and the library keep their default (any folder the caller can write).
 */
export function requireDestinationPolicy(config: HostConfig, service: 'worker' | 'api'): void {
  const { allowedRoots, unrestricted } = config.destinations;
  if (unrestricted || (allowedRoots !== undefined && allowedRoots.length > 0)) return;
  throw new ConfigError(
    `the ${service} needs destinations.allowedRoots in the configuration: the folders fetched images may be ` +
      "written to (or destinations.unrestricted: true to accept any folder but the caches')",
    { issues: [{ path: 'destinations.allowedRoots', message: 'required by the worker and the API' }] },
  );
}
