import * as fs from 'node:fs';
import { ConfigError } from '@imagecache/errors';
import type { ConnectionOptions } from 'node:tls';
import type { Agent } from 'undici';
import type { ResolvedHttpOptions } from '../options';
import { IdleSockets } from './idle-sockets';
import { pinnedLookup, type PinnedAddress } from './redirect-policy';

/** How a download's own connection is made (download-exchange.ts). */
export interface ConnectSettings {
  /** TCP + TLS set-up bound; 0: none. */
  timeoutMs: number;
  tls: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'minVersion'>;
}

/** The connection settings of one option set: a shared keep-alive Agent and how downloads connect. */
export interface Dispatchers {
  /** Shared, keep-alive: small answers read whole (JSON of image services, tokens). Made on first use. */
  readonly agent: Agent;
  /** Downloads: a connection of their own each, read by our receive path (see download-exchange.ts). */
  readonly connect: ConnectSettings;
  /** Connections kept after a HEAD for the next one (head-exchange.ts). */
  readonly idle: IdleSockets;
  /** An agent whose connections go to `pin` only (a checked redirect target); a few are kept. */
  pinned(pin: PinnedAddress): Agent;
}

/** Pinned agents kept per option set (the oldest is closed beyond this). */
const PINNED_AGENTS = 16;

const cache = new Map<string, Dispatchers>();
/** The agents made so far (an option set's agent is made by its first small request). */
const agents = new Set<Agent>();

/** The dispatchers of option sets already asked for, by identity (resolved sets are shared: see options.ts). */
let byOptions = new WeakMap<ResolvedHttpOptions, Dispatchers>();

/** One set of dispatchers per distinct option set, created once (the CA file is read once). */
export function dispatchersFor(opts: ResolvedHttpOptions): Dispatchers {
  const known = byOptions.get(opts);
  if (known) return known;
  const d = dispatchersByKey(opts);
  byOptions.set(opts, d);
  return d;
}

function dispatchersByKey(opts: ResolvedHttpOptions): Dispatchers {
  const key = `${opts.inactivityTimeoutMs}|${opts.connectTimeoutMs}|${opts.caFile ?? ''}|${opts.minTlsVersion}|${opts.verifyTls}`;
  let d = cache.get(key);
  if (!d) {
    d = create(opts);
    cache.set(key, d);
  }
  return d;
}

function create(opts: ResolvedHttpOptions): Dispatchers {
  let ca: Buffer | undefined;
  if (opts.caFile !== undefined) {
    try {
      ca = fs.readFileSync(opts.caFile);
    } catch (err) {
      throw new ConfigError(`cannot read the CA bundle ${opts.caFile}: ${(err as Error).message}`, {
        caFile: opts.caFile,
      });
    }
  }
  const connect = {
    timeout: opts.connectTimeoutMs,
    rejectUnauthorized: opts.verifyTls,
    minVersion: opts.minTlsVersion,
    ...(ca ? { ca } : {}),
  };
  const common = {
    connect,
    headersTimeout: opts.inactivityTimeoutMs,
    bodyTimeout: opts.inactivityTimeoutMs,
  };
  let agent: Agent | undefined;
  const pinned = new Map<string, Agent>();
  return {
    pinned(pin) {
      const key = `${pin.family}|${pin.address}`;
      let a = pinned.get(key);
      if (a) {
        pinned.delete(key); // most recently used last
      } else {
        a = new (agentClass())({
          ...common,
          connect: { ...connect, lookup: pinnedLookup(pin) },
          keepAliveTimeout: 10_000,
          keepAliveMaxTimeout: 60_000,
        });
        agents.add(a);
        if (pinned.size >= PINNED_AGENTS) {
          const [oldKey, old] = pinned.entries().next().value as [string, Agent];
          pinned.delete(oldKey);
          agents.delete(old);
          void old.close().catch(() => undefined);
        }
      }
      pinned.set(key, a);
      return a;
    },
    get agent() {
      if (!agent) {
        agent = new (agentClass())({ ...common, keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000 });
        agents.add(agent);
      }
      return agent;
    },
    idle: new IdleSockets(),
    connect: {
      timeoutMs: opts.connectTimeoutMs,
      tls: { rejectUnauthorized: opts.verifyTls, minVersion: opts.minTlsVersion, ...(ca ? { ca } : {}) },
    },
  };
}

/**
 * undici's Agent, loaded on first use and from its own module: undici's index also loads fetch, WebSocket, the
 * cache and cookie code (two thirds of its load time), none of which a small request needs. A process that
 * only fetches over http(s) (HEADs and downloads are ours) loads none of it.
 */
function agentClass(): typeof Agent {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('undici/lib/dispatcher/agent') as typeof Agent;
}

/** Closes every shared connection (tests, shutdown). Sources resolved afterwards get new ones. */
export async function closeHttpConnections(): Promise<void> {
  const all = [...agents];
  for (const d of cache.values()) d.idle.destroyAll();
  cache.clear();
  byOptions = new WeakMap();
  agents.clear();
  await Promise.all(all.map((a) => a.close().catch(() => undefined)));
}
