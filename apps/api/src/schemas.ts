import * as path from 'node:path';
import { z } from 'zod';
import { CACHE_NAME, CACHE_NAME_RULE, HOST_NAME, HOST_NAME_RULE, parseSize } from '@imagecache/config';
import { FetchRequestSchema, RequestAuthSchema } from '@imagecache/contract';

// As a configuration may declare them (@imagecache/config's names.ts): queue names are made of them.
const hostName = () => z.string({ error: 'must be a string' }).regex(HOST_NAME, { error: HOST_NAME_RULE });
const cacheName = () => z.string({ error: 'must be a string' }).regex(CACHE_NAME, { error: CACHE_NAME_RULE });
const absolutePath = () =>
  z
    .string({ error: 'must be a string' })
    .min(1)
    .max(4096)
    .refine((p) => path.isAbsolute(p), { error: 'must be an absolute path' })
    .refine((p) => !p.includes('\0'), { error: 'must not contain a NUL character' });
// Never quoted in messages: an href may carry credentials.
const href = () => z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(16384);

export const AuthSchema = RequestAuthSchema;

/** Ms a call may wait for its job; beyond it the answer is 504 QUEUE_TIMEOUT (the job goes on). */
const timeoutMs = () =>
  z
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000)
    .optional();

/** The fetch request (@imagecache/contract), its lengths bounded, for a host's cache. */
export const FetchBodySchema = z.strictObject({
  host: hostName(),
  cache: cacheName(),
  ...FetchRequestSchema.shape,
  href: href(),
  dest: absolutePath(),
  expectedFormat: z.string().min(1).max(64).optional(),
  expectedChecksum: z.string().min(1).max(16384).optional(),
  expectedChecksumAlgo: z.string().min(1).max(64).optional(),
  /** true: answer with the result (200) or the error; false: answer 202 {jobId} at once. Default true. */
  wait: z.boolean().default(true),
  timeoutMs: timeoutMs(),
});
export type FetchBody = z.infer<typeof FetchBodySchema>;

/** Bytes, or a size with a unit (`500MiB`). */
const size = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    try {
      return parseSize(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
      return z.NEVER;
    }
  });

export const CleanUpBodySchema = z.strictObject({
  host: hostName(),
  cache: cacheName(),
  amount: size().optional(),
  timeoutMs: timeoutMs(),
});
export type CleanUpBody = z.infer<typeof CleanUpBodySchema>;

export const CleanUpCachesBodySchema = z.strictObject({
  host: hostName(),
  directory: absolutePath(),
  images: z
    .array(z.strictObject({ href: href(), auth: AuthSchema.optional() }))
    .min(1, { error: 'must list at least one image' })
    .max(1000),
  timeoutMs: timeoutMs(),
});
export type CleanUpCachesBody = z.infer<typeof CleanUpCachesBodySchema>;

export const JobIdParamsSchema = z.object({ id: z.string().min(1).max(1024) });

/** Every problem of a body on one line, each naming its field: `dest: must be an absolute path; …`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length
        ? i.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
            .join('.')
            .replace(/\.\[/g, '[')
        : 'body';
      let message = i.message;
      if (i.code === 'invalid_type' && i.path.length === 0) message = 'must be a JSON object';
      else if (i.code === 'invalid_type' && i.input === undefined) message = 'is required';
      else if (i.code === 'unrecognized_keys')
        message = `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      return `${where}: ${message}`;
    })
    .join('; ');
}
