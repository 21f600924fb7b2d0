import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { FetchRequestSchema, RequestAuthSchema } from '@imagecache/contract';
import type { JobKind } from './names';

/**
 * Job names (BullMQ's `name` of each job): each queue's kind (names.ts) names its jobs, and `list` runs on a
 * cache's clean queue (reading the folder is quick, and it never races an eviction).
 */
export const JOB_NAMES = {
  fetch: 'fetch',
  clean: 'clean',
  list: 'list',
  cleanCaches: 'clean-caches',
} as const satisfies Record<string, JobKind | 'list'>;

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

/** The id of the job a secret was stored for: the only one that may use or delete it. */
const owner = z.string().min(1);

/** The secret of a fetch job: its real href, checksum (a checksum file's URL may hold credentials too) and auth. */
export const FetchSecretSchema = z.object({
  kind: z.literal(JOB_NAMES.fetch),
  owner,
  href: z.string().min(1),
  expectedChecksum: z.string().min(1).optional(),
  auth: RequestAuthSchema.optional(),
});
export type FetchSecret = z.infer<typeof FetchSecretSchema>;

/** The secret of a clean-caches job: the images as requested, each with its real href and auth. */
export const CleanCachesSecretSchema = z.object({
  kind: z.literal(JOB_NAMES.cleanCaches),
  owner,
  images: z.array(z.object({ href: z.string().min(1), auth: RequestAuthSchema.optional() })).min(1),
});
export type CleanCachesSecret = z.infer<typeof CleanCachesSecretSchema>;

/** What the secret of a job holds, by the job's kind (its `kind` is the job's name). */
export const JobSecretSchema = z.discriminatedUnion('kind', [FetchSecretSchema, CleanCachesSecretSchema]);
export type JobSecret = z.infer<typeof JobSecretSchema>;

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
