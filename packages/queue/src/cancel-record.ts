import type { Cluster, Redis } from 'ioredis';
import { keys } from './names';

/** How long a cancel is remembered: as long as a job's credentials live, past which no job of it can run. */
export const CANCEL_TTL_SECONDS = 7 * 24 * 3600;

/** How long a cancel waits, at most, for a replica to hold its record (Cluster and Sentinel). */
const REPLICA_WAIT_MS = 1000;

/**
 * Cancels, recorded in a key per job (`<prefix>:cancelled:<jobId>`, with a TTL) before the job is removed: a caller
 * whose job is gone adds it again unless it was cancelled (image-cache-client.ts), so a cancel must outlive the
 * job's removal and the removal event, both of which a caller in another process may miss.
 *
 * On a replicated deployment the record is written with `WAIT 1`: it is on a replica before the job is removed, so
 * a failover right after the cancel can't lose the record and keep the removal undone (a failover may lose both, and
 * then the job is still there to cancel again). Best effort within REPLICA_WAIT_MS: a deployment whose replicas are
 * all down still cancels.
 */
export class CancelRecord {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly replicated: boolean,
  ) {}

  async record(jobId: string, reason: string): Promise<void> {
    const key = keys.cancelled(this.prefix, jobId);
    // One pipeline: on a Cluster, WAIT (no key) goes to the node of the key it follows.
    const p = this.redis.pipeline().set(key, reason, 'EX', CANCEL_TTL_SECONDS);
    if (this.replicated) p.call('WAIT', 1, REPLICA_WAIT_MS);
    // Only the record's own failure counts: a WAIT that no replica answered in time is not one.
    const [set] = (await p.exec()) ?? [[new Error('no reply to the cancel record')]];
    if (set?.[0]) throw set[0];
  }

  /** Whether `jobId` was cancelled (within CANCEL_TTL_SECONDS). */
  async has(jobId: string): Promise<boolean> {
    return (await this.redis.exists(keys.cancelled(this.prefix, jobId))) === 1;
  }
}
