import { randomUUID } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import { redactHref } from '@imagecache/errors';
import type { JobSecret } from './catalog';
import { keys } from './names';

/** How long a job's credentials are kept at most (a job older than this fails for want of them). */
export const SECRET_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Credentials never go into job data (Bull Board shows it): they go into a key of their own, with a TTL,
 * deleted when the job is done. Redis is the trust boundary, as it is for the jobs themselves.
 */
export class SecretStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
  ) {}

  /** Stores the secret if there is one to keep; returns its id and the hrefs as job data may show them. */
  async stash(hrefs: string[], auth: (unknown | undefined)[]): Promise<{ id?: string; shown: string[] }> {
    const shown = hrefs.map(redactHref);
    const needed = shown.some((s, i) => s !== hrefs[i]) || auth.some((a) => a !== undefined);
    if (!needed) return { shown };
    const id = randomUUID();
    const secret: JobSecret = { hrefs, auth };
    await this.redis.set(keys.secret(this.prefix, id), JSON.stringify(secret), 'EX', SECRET_TTL_SECONDS);
    return { id, shown };
  }

  async get(id: string): Promise<JobSecret | undefined> {
    const raw = await this.redis.get(keys.secret(this.prefix, id));
    return raw === null ? undefined : (JSON.parse(raw) as JobSecret);
  }

  async drop(id: string): Promise<void> {
    await this.redis.del(keys.secret(this.prefix, id));
  }
}
