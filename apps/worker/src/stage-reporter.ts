import type { Job } from 'bullmq';
import type { FetchProgress } from '@imagecache/core';
import type { JobProgress } from '@imagecache/queue';

/** Progress is written to Redis at most this often (the board and callers poll it, not every block). */
const PROGRESS_INTERVAL_MS = 1000;
/** Nothing is written for a job that finishes sooner (a warm hit): it would cost more round trips than the hit. */
const QUIET_START_MS = 250;

/**
 * Reports a job's stages: each new stage is saved in the job's data (so a retry and the board know where it
 * got) and logged to the job; byte counts go to `job.updateProgress` about once a second. Jobs that end within
 * QUIET_START_MS write nothing.
 */
export class StageReporter {
  private latest?: FetchProgress;
  private writtenStage = '';
  private lastWrite = 0;
  private readonly started = Date.now();
  private timer?: NodeJS.Timeout;
  private chain: Promise<unknown> = Promise.resolve();
  private done = false;

  constructor(private readonly job: Job) {}

  readonly onProgress = (p: FetchProgress): void => {
    this.latest = p;
    const now = Date.now();
    if (now - this.started < QUIET_START_MS) {
      this.timer ??= setTimeout(() => this.write(Date.now()), QUIET_START_MS - (now - this.started));
      return;
    }
    if (p.stage !== this.writtenStage || now - this.lastWrite >= PROGRESS_INTERVAL_MS) this.write(now);
  };

  /** Stops reporting and waits for the writes still in flight (before the job's result is returned). */
  flush(): Promise<unknown> {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    return this.chain;
  }

  private write(now: number): void {
    const p = this.latest;
    if (!p || this.done) return;
    const newStage = p.stage !== this.writtenStage;
    this.writtenStage = p.stage;
    this.lastWrite = now;
    const progress: JobProgress = {
      stage: p.stage,
      bytes: p.bytes,
      totalBytes: p.totalBytes,
      progress: p.totalBytes ? Math.min(100, Math.floor((100 * (p.bytes ?? 0)) / p.totalBytes)) : 0,
    };
    const job = this.job;
    // Writes are chained so they land in order; a failed write (Redis blip) is not a failed job.
    this.chain = this.chain
      .then(async () => {
        if (newStage) {
          await job.updateData({ ...job.data, stage: p.stage });
          await job.log(`${new Date(now).toISOString()} ${p.stage}`);
        }
        await job.updateProgress(progress);
      })
      .catch(() => undefined);
  }
}
