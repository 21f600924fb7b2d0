import type { Job, Processor } from 'bullmq';
import { OperationAborted } from '@imagecache/errors';
import type { CancelRecord, SecretStore } from '@imagecache/queue';
import { failAttempt } from './outcome';

/**
 * A cancelled job can come back: a failover may lose its removal (asynchronous replication) while the cancel's
 * record, written first and waited on a replica, survives; the stalled-job check may also run again a job whose
 * cancel arrived while no worker held it. Its record says no before any work starts: the job fails `ABORTED`, for
 * good, and its credentials go.
 */
export function unlessCancelled(
  processor: Processor,
  cancels: CancelRecord,
  secrets?: SecretStore,
): Processor {
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    // A Redis that can't answer here can't run the job either: the processor's own calls will say so.
    const cancelled = job.id !== undefined && (await cancels.has(job.id).catch(() => false));
    if (!cancelled) return processor(job, token, signal);
    const reason = `job ${job.id} was cancelled`;
    return failAttempt(
      job,
      new OperationAborted(reason, { jobId: job.id }),
      AbortSignal.abort(reason),
      token,
      secrets,
    );
  };
}
