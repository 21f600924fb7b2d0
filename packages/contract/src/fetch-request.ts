import { z } from 'zod';

/**
 * The options of one fetch, as every caller gives them: the engine's `fetchImage` (its `FetchOptions` are this
 * plus what only a process can pass: a signal, a progress callback), the queue's job data, the HTTP API's body and
 * the CLI's flags. A new option is added here once: the queue, the worker and the API pass it on (`fetchOptionsOf`),
 * the engine honours it, the CLI gives it a flag (its mapping is typed with every option).
 *
 * The bounds here are those every carrier keeps (a job's data is checked again by the worker): an outer layer may
 * narrow a field (the HTTP API bounds lengths), never widen it.
 */
export const FetchOptionsSchema = z.object({
  /** Overrides the cache's forceRaw for this image (changes the master name). */
  forceRaw: z.boolean().optional(),
  /** Refuse an image of another format. */
  expectedFormat: z.string().optional(),
  /** `algo:value`, a bare hex value, or an http(s) URL of a checksum file. */
  expectedChecksum: z.string().optional(),
  /** The algorithm of a bare `expectedChecksum` value. */
  expectedChecksumAlgo: z.string().optional(),
});
export type FetchRequestOptions = z.infer<typeof FetchOptionsSchema>;

/** A request's own credentials for its image (the engine's `ImageAuth` takes these and more). */
export const RequestAuthSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }),
    z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
  ],
  { error: 'must be {type:"basic", username, password} or {type:"bearer", token}' },
);
export type RequestAuth = z.infer<typeof RequestAuthSchema>;

/** One fetch: which image, where it goes, its options and credentials. Job data carries no `auth` (it is stashed). */
export const FetchRequestSchema = z.object({
  href: z.string().min(1),
  dest: z.string().min(1),
  ...FetchOptionsSchema.shape,
  auth: RequestAuthSchema.optional(),
});
export type FetchRequest = z.infer<typeof FetchRequestSchema>;

/** The names of the fetch options (FetchOptionsSchema's keys). */
export const FETCH_OPTION_KEYS = Object.freeze(FetchOptionsSchema.keyof().options);

/**
 * The fetch options of anything that carries them (a request, a job's data, a verb's flags), and nothing else:
 * what is not an option (href, credentials, a job's state) is left behind, an option left undefined stays out.
 */
export function fetchOptionsOf(from: {
  [K in keyof FetchRequestOptions]?: FetchRequestOptions[K] | undefined;
}): FetchRequestOptions {
  const picked: Record<string, unknown> = {};
  for (const key of FETCH_OPTION_KEYS) if (from[key] !== undefined) picked[key] = from[key];
  return picked as FetchRequestOptions;
}
