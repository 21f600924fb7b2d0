import type { Job } from 'bullmq';
import type { CacheRegistry, ImageCache } from '@imagecache/core';
import {
  CleanCachesJobDataSchema,
  CleanJobDataSchema,
  JOB_NAMES,
  type CleanCachesSecret,
  type SecretStore,
} from '@imagecache/queue';
import { failAttempt } from './outcome';

/** One clean-up of a master folder. The queue runs one at a time across replicas; the engine's file lock fences it. */
export function cleanProcessor(cache: ImageCache) {
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    if (job.name === JOB_NAMES.list) {
      return cache.listing();
    }
    const data = CleanJobDataSchema.parse(job.data);
    try {
      await job.log(
        `${new Date().toISOString()} clean-up${data.amount !== undefined ? ` of ${data.amount} bytes` : ''}`,
      );
      const startedAt = Date.now();
      const result = await cache.cleanUp(data.amount);
      return { cache: cache.name, ...result, startedAt, finishedAt: Date.now() };
    } catch (err) {
      return failAttempt(job, err, signal, token);
    }
  };
}

/** Room for images in a folder, across the host's caches by priority. */
export function cleanCachesProcessor(registry: CacheRegistry, secrets: SecretStore) {
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    const data = CleanCachesJobDataSchema.parse(job.data);
    let secret: CleanCachesSecret | undefined;
    try {
      if (data.credentialsRef)
        secret = await secrets.claim(data.credentialsRef, job.id, JOB_NAMES.cleanCaches);
      // The secret holds the images as requested (the job data shows their hrefs redacted).
      const images = secret?.images ?? data.hrefs.map((href) => ({ href }));
      const result = await registry.cleanUpCaches(data.directory, images, signal);
      if (data.credentialsRef) await secrets.release(data.credentialsRef, job.id).catch(() => undefined);
      return result;
    } catch (err) {
      return failAttempt(job, err, signal, token, secrets, secret);
    }
  };
}
