import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { deserializeError, redactSecrets, toImageCacheError, type ImageCacheError } from '@imagecache/errors';
import { secretTexts, type JobSecret, type SecretStore } from '@imagecache/queue';

/** Why a job's signal fired: the caller cancelled it, or this worker is shutting down. */
export const SHUTDOWN = 'shutdown';

/**
 * Turns an attempt's failure into what BullMQ should do: the typed error is stored in the job first (the
 * caller rebuilds it from there). Permanent errors and cancellations fail at once; a shutdown hands the job
 * back (delayed, no attempt used) so another replica picks it up; the rest is retried with back-off.
 * Whatever the error quotes of the job's credentials (`secret`: a server echoing a token, a URL in a message)
 * is removed before it is stored, logged or thrown.
 */
export async function failAttempt(
  job: Job,
  err: unknown,
  signal: AbortSignal | undefined,
  token?: string,
  secrets?: SecretStore,
  secret?: JobSecret,
): Promise<never> {
  const e = secret ? scrub(toImageCacheError(err), secretTexts(secret)) : toImageCacheError(err);
  if (signal?.aborted && signal.reason === SHUTDOWN && token) {
    await job.updateData({ ...job.data, error: undefined });
    await job.moveToDelayed(Date.now() + 1000, token);
    throw new DelayedError();
  }
  await job.updateData({ ...job.data, error: e.toJSON() }).catch(() => undefined);
  await job.log(`${new Date().toISOString()} failed: ${e.code}: ${e.message}`).catch(() => undefined);
  const final = !e.retryable || signal?.aborted || isLastAttempt(job);
  // The job is over: its credentials go now, not at their TTL.
  // Only this job's own: another job's reference (CREDENTIALS_NOT_OWNED) leaves that job's credentials alone.
  const ref = (job.data as { credentialsRef?: string }).credentialsRef;
  if (final && ref && secrets) await secrets.release(ref, job.id).catch(() => undefined);
  // BullMQ keeps the message as the job's failedReason (the board shows it): it leads with the code.
  if (!e.retryable || signal?.aborted) throw new UnrecoverableError(`${e.code}: ${e.message}`);
  throw deserializeError({ ...e.toJSON(), message: `${e.code}: ${e.message}` });
}

/** The same error with every occurrence of the given texts replaced by ***. */
function scrub(e: ImageCacheError, texts: string[]): ImageCacheError {
  const json = e.toJSON();
  const safe = JSON.parse(
    redactSecrets(
      JSON.stringify(json),
      texts.map((t) => JSON.stringify(t).slice(1, -1)),
    ),
  ) as typeof json;
  return JSON.stringify(safe) === JSON.stringify(json) ? e : deserializeError(safe);
}

/** Whether this attempt is the job's last (a transient failure would not be retried). */
export function isLastAttempt(job: Job): boolean {
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
