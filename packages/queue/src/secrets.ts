import { randomUUID } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import { CredentialsExpired, CredentialsNotOwned, redactHref } from '@imagecache/errors';
import type { RequestAuth } from '@imagecache/contract';
import { JOB_NAMES, JobSecretSchema, type JobSecret } from './catalog';
import { keys } from './names';

/** How long a job's credentials are kept at most (a job older than this fails for want of them). */
export const SECRET_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Credentials never go into job data (Bull Board shows it): they go into a key of their own, with a TTL,
 * deleted when the job is done. Redis is the trust boundary, as it is for the jobs themselves.
 *
 * A secret is bound to the job it was stored for: its record names that job, and only that job may read or
 * delete it. Job data is editable on the board (add, duplicate), so a reference copied into another job must
 * give that job nothing, and must not let it delete the real job's credentials.
 */
export class SecretStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
  ) {}

  /**
   * Stores the secret of job `secret.owner` if it holds anything to keep (an href with credentials, an auth);
   * returns its reference, to put in the job's data.
   */
  async stash(secret: JobSecret): Promise<string | undefined> {
    const needed = hrefsOf(secret).some((h) => redactHref(h) !== h) || authsOf(secret).length > 0;
    if (!needed) return undefined;
    const ref = randomUUID();
    await this.redis.set(keys.secret(this.prefix, ref), JSON.stringify(secret), 'EX', SECRET_TTL_SECONDS);
    return ref;
  }

  /**
   * The secret `ref` for job `jobId` (of `kind`, the job's name, when given). Throws CredentialsExpired when it
   * is gone (dropped when the job finished, or past its TTL) and CredentialsNotOwned when it belongs to another
   * job.
   */
  async claim<K extends JobSecret['kind']>(
    ref: string,
    jobId: string | undefined,
    kind: K,
  ): Promise<Extract<JobSecret, { kind: K }>>;
  async claim(ref: string, jobId: string | undefined): Promise<JobSecret>;
  async claim(ref: string, jobId: string | undefined, kind?: JobSecret['kind']): Promise<JobSecret> {
    const secret = await this.read(ref);
    if (!secret) {
      throw new CredentialsExpired(
        `the credentials of job ${jobId} were dropped (it had finished once, or they outlived their ` +
          `${SECRET_TTL_SECONDS / 86400}-day limit): submit the request again with its credentials`,
        { jobId },
      );
    }
    // A job's own secret is always of its kind: another kind can only be another job's.
    if (secret.owner !== jobId || (kind !== undefined && secret.kind !== kind)) {
      throw new CredentialsNotOwned(
        `job ${jobId} names credentials that belong to another job: it gets none (a job added or duplicated ` +
          "on the board can't reuse another job's credentials; submit the request again with its own)",
        { jobId },
      );
    }
    return secret;
  }

  /**
   * Stores `secret` again under its reference `ref` if the key is gone (lost with a Redis master in a failover, or
   * released by a run whose completion was lost), for the same job added again by its caller. A secret still there
   * is left as it is.
   */
  async restore(ref: string, secret: JobSecret): Promise<void> {
    if (!/^[0-9a-f-]{36}$/i.test(ref)) return;
    await this.redis.set(
      keys.secret(this.prefix, ref),
      JSON.stringify(secret),
      'EX',
      SECRET_TTL_SECONDS,
      'NX',
    );
  }

  /** Deletes the secret `ref` if it belongs to job `jobId` (another job's is left as it is). */
  async release(ref: string, jobId: string | undefined): Promise<void> {
    // The record never changes once written, so reading its owner then deleting it can't remove another's.
    const secret = await this.read(ref);
    if (secret && secret.owner === jobId) await this.redis.del(keys.secret(this.prefix, ref));
  }

  private async read(ref: string): Promise<JobSecret | undefined> {
    // A reference is a UUID: anything else (edited on the board) names no key of ours.
    if (!/^[0-9a-f-]{36}$/i.test(ref)) return undefined;
    const raw = await this.redis.get(keys.secret(this.prefix, ref));
    if (raw === null) return undefined;
    try {
      // A record of another shape (an older version's, stored by position) is read as none: CredentialsExpired.
      const parsed = JobSecretSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Every href a secret holds, whatever its kind. */
function hrefsOf(secret: JobSecret): string[] {
  if (secret.kind === JOB_NAMES.fetch)
    return secret.expectedChecksum === undefined ? [secret.href] : [secret.href, secret.expectedChecksum];
  return secret.images.map((i) => i.href);
}

/** Every auth a secret holds. */
function authsOf(secret: JobSecret): RequestAuth[] {
  const all = secret.kind === JOB_NAMES.fetch ? [secret.auth] : secret.images.map((i) => i.auth);
  return all.filter((a) => a !== undefined);
}

/**
 * The credential texts a secret holds (user-info and passwords of its hrefs, their secret query values, auth
 * passwords and tokens), to scrub them from anything a job writes where others can read it.
 */
export function secretTexts(secret: JobSecret): string[] {
  const out: string[] = [];
  for (const href of hrefsOf(secret)) {
    const shown = redactHref(href);
    if (shown === href) continue;
    out.push(href);
    for (const m of href.matchAll(/[a-z][a-z0-9+.-]*:\/\/(\S*)@/gi)) {
      const userinfo = m[1] ?? '';
      const password = userinfo.slice(userinfo.indexOf(':') + 1);
      out.push(userinfo, password, safeDecode(password));
    }
    const given = queryValues(href);
    queryValues(shown).forEach((v, i) => {
      if (v === '***' && given[i] !== undefined && given[i] !== '***')
        out.push(given[i]!, safeDecode(given[i]!));
    });
  }
  for (const a of authsOf(secret)) out.push(a.type === 'basic' ? a.password : a.token);
  return [...new Set(out)].filter((s) => s.length >= 3).sort((x, y) => y.length - x.length);
}

function queryValues(href: string): string[] {
  const q = href.indexOf('?');
  if (q < 0) return [];
  return href
    .slice(q + 1)
    .split('#')[0]!
    .split('&')
    .map((pair) => pair.slice(pair.indexOf('=') + 1));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
