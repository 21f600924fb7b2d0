import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { FetchRequestSchema } from '@imagecache/contract';

/** Job names (BullMQ's `name` of each job). */
/** `list` runs on a cache's clean queue: reading the folder is quick, and it never races an eviction. */
export const JOB_NAMES = {
  fetch: 'fetch',
  clean: 'clean',
  list: 'list',
  cleanCaches: 'clean-caches',
} as const;

const SerializedErrorSchema = z.object({
  name: z.string(),
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()),
});

/** Common to every job: where it is, and the typed error of its last failed attempt. */
const JobState = {
  /** The stage reached (fetch: resolve → download → … → evict). */
  stage: z.string().optional(),
  /** Set by the worker before an attempt fails: the caller gets this class and code back. */
  error: SerializedErrorSchema.optional(),
  /**
   * Reference of the credentials kept out of job data (shown on the board) in a key of their own; they are bound
   * to this job (another job naming the reference gets none).
   */
  credentialsRef: z.string().optional(),
};

/**
 * Data of a fetch job: the fetch request (@imagecache/contract) without its credentials, which are stashed (see
 * `credentialsRef`); `href` is redacted when credentials were taken out of it.
 */
export const FetchJobDataSchema = FetchRequestSchema.omit({ auth: true }).extend(JobState);
export type FetchJobData = z.infer<typeof FetchJobDataSchema>;

export const CleanJobDataSchema = z.object({
  amount: z.number().int().nonnegative().optional(),
  ...JobState,
});
export type CleanJobData = z.infer<typeof CleanJobDataSchema>;

export const CleanCachesJobDataSchema = z.object({
  directory: z.string().min(1),
  /** Redacted hrefs; the real ones (and auth) are in the secret when they held credentials. */
  hrefs: z.array(z.string().min(1)).min(1),
  ...JobState,
});
export type CleanCachesJobData = z.infer<typeof CleanCachesJobDataSchema>;

/** What the secret of a job holds: the job it belongs to, the real hrefs and credentials. */
export interface JobSecret {
  /** The id of the job the secret was stored for: the only one that may use or delete it. */
  owner: string;
  hrefs: string[];
  auth?: unknown[];
}

/** Progress as reported to the job (Bull Board draws `progress`, 0–100). */
export interface JobProgress {
  stage: string;
  bytes?: number;
  totalBytes?: number;
  progress: number;
}

/**
 * Defaults of the jobs we add. Transient failures retry with exponential back-off and jitter; finished jobs
 * stay long enough for a caller to read them (never removed at once: waiting on them would fail).
 */
export const DEFAULT_JOB_OPTIONS: Readonly<Record<keyof typeof JOB_NAMES, JobsOptions>> = Object.freeze({
  fetch: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 2000, jitter: 0.5 },
    removeOnComplete: { age: 3600, count: 5000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  clean: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 24 * 3600 },
  },
  list: {
    attempts: 1,
    removeOnComplete: { age: 600, count: 100 },
    removeOnFail: { age: 3600 },
  },
  cleanCaches: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 24 * 3600 },
  },
});
