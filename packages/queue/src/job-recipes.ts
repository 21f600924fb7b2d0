import type { JobsOptions } from 'bullmq';
import type { JobSecret } from './catalog';

/** What a client needs to add one of its jobs again, as it added it: same name, data, options and credentials. */
export interface JobRecipe {
  queue: string;
  name: string;
  data: object;
  opts: JobsOptions;
  /** The credentials stashed for it, and their reference (in `data.credentialsRef`). */
  secret?: { ref: string; value: JobSecret };
}

/** How long the recipe of a job enqueued without waiting is kept for a `waitFor` that may follow (the API's). */
const UNCLAIMED_MS = 60_000;

/**
 * The recipes of the jobs this client added, kept in memory while a call waits for them (image-cache-client.ts adds
 * a lost job again from its recipe). A job enqueued without waiting keeps its recipe UNCLAIMED_MS for a `waitFor`
 * of the same client (the API enqueues, then waits); after that only `getJob` can follow it.
 */
export class JobRecipes {
  private readonly recipes = new Map<string, { recipe: JobRecipe; expiry?: NodeJS.Timeout }>();

  keep(jobId: string, recipe: JobRecipe, claimed: boolean): void {
    this.drop(jobId);
    const expiry = claimed ? undefined : setTimeout(() => this.recipes.delete(jobId), UNCLAIMED_MS);
    expiry?.unref();
    this.recipes.set(jobId, { recipe, expiry });
  }

  /** The recipe of `jobId`, now claimed by a waiting call (kept until `drop`). */
  claim(jobId: string): JobRecipe | undefined {
    const entry = this.recipes.get(jobId);
    if (entry?.expiry) clearTimeout(entry.expiry);
    if (entry) entry.expiry = undefined;
    return entry?.recipe;
  }

  drop(jobId: string): void {
    const entry = this.recipes.get(jobId);
    if (entry?.expiry) clearTimeout(entry.expiry);
    this.recipes.delete(jobId);
  }

  clear(): void {
    for (const id of [...this.recipes.keys()]) this.drop(id);
  }
}
