import { UsageError } from '@imagecache/errors';

/**
 * The grammar of the names a deployment is built from: a host's name and a cache's name. A configuration may
 * declare only these, and the distributed mode's queue names (`fetch.<cache>@<host>`, @imagecache/queue's
 * names.ts) are made of them, so a queue name built from a valid configuration always parses back. It lives
 * here, the lowest package that the configuration, the queue and the API all import (the queue imports the
 * configuration, never the other way).
 *
 * Neither may hold `:` (BullMQ refuses it in queue names and job ids), `@` (it separates cache from host), `~`
 * (it ends the queue in a job id) or a space. A cache name also goes into environment variable names
 * (`IMAGECACHE_CACHE_<NAME>_SIZE`) and into the queue name before the `@`: no `.`, at most 64 characters. A host
 * name may be a DNS name (`node-a.rack-1.example`).
 */
export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;
export const HOST_NAME_RULE =
  'must be a host name: 1-253 letters, digits, ".", "-" or "_", starting with a letter or digit';

export const CACHE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const CACHE_NAME_RULE = 'must be 1-64 letters, digits, "-" or "_", starting with a letter or digit';

/** `host` if it is a valid host name, else a UsageError naming the rule. */
export function checkHostName(host: string): string {
  if (!HOST_NAME.test(host)) throw new UsageError(`host ${JSON.stringify(host)} ${HOST_NAME_RULE}`);
  return host;
}

/** `cache` if it is a valid cache name, else a UsageError naming the rule. */
export function checkCacheName(cache: string): string {
  if (!CACHE_NAME.test(cache)) throw new UsageError(`cache ${JSON.stringify(cache)} ${CACHE_NAME_RULE}`);
  return cache;
}
