import type { Cluster, Redis } from 'ioredis';
import { keys } from './names';

/** How long a fetch's result is kept beside its job. */
export const RESULT_TTL_SECONDS = 3600;

/**
 * A fetch's result, kept in a key of its own beside the job: a caller whose job is gone from Redis (Redis
 * restarted without its data while the worker ran the job) still gets the result that was produced, instead of
 * "job is gone". The worker writes it before BullMQ records the completion; on the worker's connection the write
 * waits for Redis to come back.
 */
export class ResultStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
  ) {}

  async record(jobId: string, result: unknown): Promise<void> {
    await this.redis.set(keys.result(this.prefix, jobId), JSON.stringify(result), 'EX', RESULT_TTL_SECONDS);
  }

  /** The result kept for `jobId`, or undefined. */
  async read(jobId: string): Promise<unknown> {
    const raw = await this.redis.get(keys.result(this.prefix, jobId));
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return undefined;
    }
  }
}
