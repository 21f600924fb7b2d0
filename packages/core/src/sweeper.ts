import type { CacheRegistry } from './cache-registry';
import type { Logger } from './logger';

/**
 * Cleans every cache of the registry every `intervalSeconds` (0 = never). Returns a stop function.
 * The timer is unref'd: it never keeps a process alive on its own.
 */
export function startSweeper(registry: CacheRegistry, intervalSeconds: number, logger: Logger): () => void {
  if (intervalSeconds <= 0) return () => undefined;
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    for (const cache of registry.caches) {
      await cache
        .cleanUp()
        .catch((err) => logger.warn({ err, cache: cache.name }, 'periodic clean-up failed'));
    }
    running = false;
  }, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
