import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { toImageCacheError } from '@imagecache/errors';
import type { SecretStore } from '@imagecache/queue';

/** Why a job's signal fired: the caller cancelled it, or this worker is shutting down. */
export const SHUTDOWN = 'shutdown';

/**
 * Turns an attempt's failure into what BullMQ should do: the typed error is stored in the job first (the
 * caller rebuilds it from there). Permanent errors and cancellations fail at once; a shutdown hands the job
 * back (delayed, no attempt used) so another replica picks it up; the rest is retried with back-off.
 */
export async function failAttempt(
  job: Job,
  err: unknown,
  signal: AbortSignal | undefined,
  token?: string,
  secrets?: SecretStore,
): Promise<never> {
  const e = toImageCacheError(err);
  if (signal?.aborted && signal.reason === SHUTDOWN && token) {
    await job.updateData({ ...job.data, error: undefined });
    await job.moveToDelayed(Date.now() + 1000, token);
    throw new DelayedError();
  }
  await job.updateData({ ...job.data, error: e.toJSON() }).catch(() => undefined);
  await job.log(`${new Date().toISOString()} failed: ${e.code}: ${e.message}`).catch(() => undefined);
  const final = !e.retryable || signal?.aborted || isLastAttempt(job);
  // The job is over: its credentials go now, not at their TTL.
  const secret = (job.data as { secret?: string }).secret;
  if (final && secret && secrets) await secrets.drop(secret).catch(() => undefined);
  if (!e.retryable || signal?.aborted) throw new UnrecoverableError(`${e.code}: ${e.message}`);
  throw new Error(`${e.code}: ${e.message}`);
}

/** Whether this attempt is the job's last (a transient failure would not be retried). */
export function isLastAttempt(job: Job): boolean {
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
