import type { Job } from 'bullmq';
import type { FetchProgress } from '@imagecache/core';
import type { JobProgress } from '@imagecache/queue';

/** Progress is written to Redis at most this often (the board and callers poll it, not every block). */
const PROGRESS_INTERVAL_MS = 1000;

/**
 * Reports a job's stages: each new stage is saved in the job's data (so a retry and the board know where it
 * got) and logged to the job; byte counts go to `job.updateProgress` about once a second.
 */
export class StageReporter {
  private stage = '';
  private lastWrite = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly job: Job) {}

  readonly onProgress = (p: FetchProgress): void => {
    const now = Date.now();
    const newStage = p.stage !== this.stage;
    if (!newStage && now - this.lastWrite < PROGRESS_INTERVAL_MS) return;
    this.lastWrite = now;
    const progress: JobProgress = {
      stage: p.stage,
      bytes: p.bytes,
      totalBytes: p.totalBytes,
      progress: p.totalBytes ? Math.min(100, Math.floor((100 * (p.bytes ?? 0)) / p.totalBytes)) : newStage ? 0 : 100,
    };
    const job = this.job;
    // Writes are chained so they land in order; a failed write (Redis blip) is not a failed job.
    this.chain = this.chain.then(async () => {
      if (newStage) {
        await job.updateData({ ...job.data, stage: p.stage });
        await job.log(`${new Date(now).toISOString()} ${p.stage}`);
      }
      await job.updateProgress(progress);
    }).catch(() => undefined);
    if (newStage) this.stage = p.stage;
  };

  /** Waits for the writes still in flight (before the job's result is returned). */
  flush(): Promise<unknown> {
    return this.chain;
  }

  get current(): string {
    return this.stage;
  }
}
