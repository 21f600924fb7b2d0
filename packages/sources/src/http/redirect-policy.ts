import type * as dns from 'node:dns';
import * as net from 'node:net';
import { ImageDownloadFailed, OperationAborted, RedirectRefused, UsageError } from '@imagecache/errors';

/** Where redirects may lead (spec: a redirect never reaches a link-local address, nor a blocked network). */
export interface RedirectPolicy {
  readonly blocked: net.BlockList;
  readonly allowHttpsToHttp: boolean;
  /** Identifies the policy (dispatchers are shared per option set). */
  readonly key: string;
}

/** The address a redirect target was checked at: the connection goes there and nowhere else. */
export interface PinnedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Always refused: the link-local ranges, where cloud metadata services answer (169.254.169.254). Given parsed:
 * net.isIP() on an IPv6 text compiles Node's IPv6 pattern, which every call of a fresh process (a warm hit
 * too, whose policy is built but rarely used) would pay for.
 */
const LINK_LOCAL = [
  { address: '169.254.0.0', prefix: 16, family: 4 },
  { address: 'fe80::', prefix: 10, family: 6 },
] as const;

/** A CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare address; undefined when it is neither. */
export function parseNetwork(text: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return undefined;
  const address = m[1]!.replace(/^\[(.*)\]$/, '$1');
  const family = net.isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return undefined;
  return { address, prefix, family };
}

/** Policies by option set: a BlockList is built once, not for every source (a warm hit makes one). */
const policies = new Map<string, RedirectPolicy>();

export function redirectPolicy(networks: readonly string[], allowHttpsToHttp: boolean): RedirectPolicy {
  const key = `${[...networks].sort().join(',')}|${allowHttpsToHttp}`;
  let policy = policies.get(key);
  if (!policy) {
    policy = buildPolicy(networks, allowHttpsToHttp, key);
    if (policies.size < 64) policies.set(key, policy);
  }
  return policy;
}

function buildPolicy(networks: readonly string[], allowHttpsToHttp: boolean, key: string): RedirectPolicy {
  const parsed = networks.map((text) => {
    const n = parseNetwork(text);
    if (!n) throw new UsageError(`${JSON.stringify(text)} is not a network (CIDR such as 10.0.0.0/8)`);
    return n;
  });
  let blocked: net.BlockList | undefined;
  return {
    // Built by the first redirect: most fetches follow none (half a millisecond of a fresh process's first).
    get blocked() {
      if (!blocked) {
        blocked = new net.BlockList();
        for (const n of [...LINK_LOCAL, ...parsed])
          blocked.addSubnet(n.address, n.prefix, n.family === 4 ? 'ipv4' : 'ipv6');
      }
      return blocked;
    },
    allowHttpsToHttp,
    key,
  };
}

/** Whether `address` lies in a refused network (an IPv4-mapped IPv6 address counts as its IPv4 address). */
export function isBlocked(policy: RedirectPolicy, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return policy.blocked.check(mapped[1]!, 'ipv4');
  return policy.blocked.check(address, net.isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Checks a redirect from `from` to `to` before anything is sent there: the scheme change, then every address
 * the target's name resolves to. Returns the address to connect to (checked once, used for the connection: a
 * second resolution can't lead elsewhere). Throws RedirectRefused (not retried).
 */
export async function checkRedirect(
  from: URL,
  to: URL,
  policy: RedirectPolicy,
  what: string,
  safeHref: string,
  signal?: AbortSignal,
): Promise<PinnedAddress> {
  if (from.protocol === 'https:' && to.protocol === 'http:' && !policy.allowHttpsToHttp) {
    throw new RedirectRefused(
      `${what}: redirect from https to plain http refused (http.allowHttpsToHttpRedirect)`,
      { href: safeHref },
    );
  }
  const host = to.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = net.isIP(host);
  const addresses: dns.LookupAddress[] = literal
    ? [{ address: host, family: literal }]
    : await lookupAll(host, what, safeHref, signal);
  for (const a of addresses) {
    if (isBlocked(policy, a.address)) {
      throw new RedirectRefused(
        `${what}: redirect to ${to.host} refused: it resolves to ${a.address}, a link-local or blocked ` +
          'network (http.blockedNetworks)',
        { href: safeHref, address: a.address },
      );
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

async function lookupAll(
  host: string,
  what: string,
  safeHref: string,
  signal?: AbortSignal,
): Promise<dns.LookupAddress[]> {
  if (signal?.aborted) throw new OperationAborted(`${what}: aborted`, { href: safeHref });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new OperationAborted(`${what}: aborted`, { href: safeHref }));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    // Loaded by the first redirect to a name: a fetch without one never needs node:dns.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { lookup } = (require('node:dns') as typeof dns).promises;
    const found = await Promise.race([lookup(host, { all: true, verbatim: true }), aborted]);
    if (found.length === 0) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
    return found;
  } catch (err) {
    if (err instanceof OperationAborted) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'ENOTFOUND';
    throw new ImageDownloadFailed(`${what}: cannot resolve the redirect target ${host} (${code})`, {
      href: safeHref,
      reason: code,
    });
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** A `lookup` for net/tls.connect that answers with the pinned address whatever the name. */
export function pinnedLookup(pin: PinnedAddress): net.LookupFunction {
  return ((_host: string, opts: dns.LookupOptions, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address: pin.address, family: pin.family }]);
    else cb(null, pin.address, pin.family);
  }) as unknown as net.LookupFunction;
}
