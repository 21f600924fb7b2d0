import { AsyncLocalStorage } from 'node:async_hooks';
import type { Job, Processor } from 'bullmq';
import type { Logger } from '@imagecache/core';
import { ImageCacheError, redactText } from '@imagecache/errors';
import type { JobSecret, SecretStore } from '@imagecache/queue';
import { failAttempt } from './processors/outcome';

/** The job whose work is running, as every callback and promise it starts sees it (AsyncLocalStorage). */
interface JobScope {
  jobId: string;
  queue: string;
  /**
   * Called with a rejection nothing handled inside the job's work: the job fails with it. False once the job is
   * over (a socket kept alive for later jobs carries the context of the job that opened it): not the job's then.
   */
  strayed(reason: unknown): boolean;
}

const scope = new AsyncLocalStorage<JobScope>();

/** How long a job whose work strayed may take to stop once aborted, before it is failed anyway. */
const STOP_AFTER_STRAY_MS = 10_000;

/**
 * Runs a processor inside a scope of its own, so that a promise rejection nothing handles inside the job's work
 * (a callback of a library, a forgotten await) is known to be that job's: the job is aborted and fails with it
 * (IMAGECACHE_ERROR, stored as any failure) instead of taking the process down. `installCrashHandlers` routes the
 * rejections here.
 */
export function contained(queue: string, processor: Processor, secrets?: SecretStore): Processor {
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    const own = new AbortController();
    let stray: { reason: unknown } | undefined;
    let onStray!: () => void;
    const strayed = new Promise<'stray'>((resolve) => (onStray = () => resolve('stray')));
    const jobSignal = signal ? AbortSignal.any([signal, own.signal]) : own.signal;
    let over = false;
    const work = scope.run(
      {
        jobId: String(job.id),
        queue,
        strayed: (reason) => {
          if (over) return false;
          if (!stray) {
            stray = { reason };
            own.abort(reason);
            onStray();
          }
          return true;
        },
      },
      () => Promise.resolve().then(() => processor(job, token, jobSignal)),
    );
    const settled = work.then(
      () => 'done' as const,
      () => 'done' as const,
    );
    const first = await Promise.race([settled, strayed]);
    if (first === 'done' || !stray) {
      over = true;
      return work;
    }
    // The work was aborted: let it clean up (partial files, child processes), then fail with the cause.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise((r) => (timer = setTimeout(r, STOP_AFTER_STRAY_MS)))]);
    clearTimeout(timer);
    over = true;
    const cause = stray.reason;
    const error = new ImageCacheError(
      `the job's work failed with an error nothing handled: ${redactText(messageOf(cause))}`,
    );
    // As any failure: what the error quotes of the job's credentials is scrubbed, and (the job being over:
    // `own` is aborted) its credentials are released.
    const ref = (job.data as { credentialsRef?: string }).credentialsRef;
    let secret: JobSecret | undefined;
    if (ref && secrets) secret = await secrets.claim(ref, job.id).catch(() => undefined);
    return failAttempt(job, error, own.signal, token, secrets, secret);
  };
}

/**
 * Process-wide handlers of what escapes every try/catch. A rejection inside a job's work fails that job
 * (`contained`). Anything else (an exception thrown from a callback, a rejection outside any job) leaves the
 * process in an unknown state: it is logged (message and stack, credentials redacted, with the job it came from
 * when known) and the process exits with status 1, for its supervisor to restart it; BullMQ's stalled-job check
 * then hands its running jobs to another replica once their lock expires.
 */
export function installCrashHandlers(logger: Logger, exit: (code: number) => void = process.exit): void {
  const fatal = (kind: string, err: unknown) => {
    const job = scope.getStore();
    logger.error(
      {
        error: describe(err),
        ...(job ? { job: job.jobId, queue: job.queue } : {}),
      },
      `${kind}: exiting so that the supervisor restarts the worker (its running jobs are taken over after their lock expires)`,
    );
    exit(1);
  };
  process.on('unhandledRejection', (reason) => {
    const job = scope.getStore();
    if (!job?.strayed(reason)) return fatal('unhandled rejection', reason);
    logger.error(
      { error: describe(reason), job: job.jobId, queue: job.queue },
      'unhandled rejection in a job: the job fails',
    );
  });
  process.on('uncaughtException', (err) => fatal('uncaught exception', err));
}

function messageOf(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function describe(err: unknown): { message: string; stack?: string } {
  return {
    message: redactText(messageOf(err)),
    ...(err instanceof Error && err.stack ? { stack: redactText(err.stack) } : {}),
  };
}
