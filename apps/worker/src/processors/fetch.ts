import type { Job } from 'bullmq';
import { fetchOptionsOf } from '@imagecache/contract';
import type { ImageCache } from '@imagecache/core';
import {
  FetchJobDataSchema,
  JOB_NAMES,
  type FetchSecret,
  type ResultStore,
  type SecretStore,
} from '@imagecache/queue';
import { StageReporter } from '../stage-reporter';
import { failAttempt, isLastAttempt, SHUTDOWN } from './outcome';

/**
 * One fetch job: the engine's fetchImage, whose stages (resolve → download → inspect → convert → publish →
 * link → evict) are each idempotent against the filesystem. A retry finds a published master as a hit, and a
 * partial download in the work area, which it continues with Range.
 */
export function fetchProcessor(cache: ImageCache, secrets: SecretStore, results?: ResultStore) {
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    const data = FetchJobDataSchema.parse(job.data);
    const reporter = new StageReporter(job);
    let secret: FetchSecret | undefined;
    try {
      // Another job's reference, or one already dropped, fails here with a typed error: never anonymously.
      if (data.credentialsRef) secret = await secrets.claim(data.credentialsRef, job.id, JOB_NAMES.fetch);
      const result = await cache.fetchImage(secret?.href ?? data.href, data.dest, {
        ...fetchOptionsOf(data),
        expectedChecksum: secret?.expectedChecksum ?? data.expectedChecksum,
        auth: secret?.auth,
        signal,
        // Kept for the next attempt (or the replica a shutdown hands the job to); not when cancelled.
        keepPartial: () => !isLastAttempt(job) && !(signal?.aborted && signal.reason !== SHUTDOWN),
        onProgress: reporter.onProgress,
      });
      await reporter.flush();
      if (data.credentialsRef) await secrets.release(data.credentialsRef, job.id).catch(() => undefined);
      // Kept beside the job: should Redis lose the job meanwhile, its caller still gets what was produced.
      if (results && job.id) await results.record(job.id, result).catch(() => undefined);
      return result;
    } catch (err) {
      await reporter.flush();
      return failAttempt(job, err, signal, token, secrets, secret);
    }
  };
}
