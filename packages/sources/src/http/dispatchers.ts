import * as fs from 'node:fs';
import { ConfigError } from '@imagecache/errors';
import type { ConnectionOptions } from 'node:tls';
import type { Agent } from 'undici';
import type { ResolvedHttpOptions } from '../options';
import { pinnedLookup, type PinnedAddress } from './redirect-policy';

/** How a download's own connection is made (download-exchange.ts). */
export interface ConnectSettings {
  /** TCP + TLS set-up bound; 0: none. */
  timeoutMs: number;
  tls: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'minVersion'>;
}

/** The connection settings of one option set: a shared keep-alive Agent and how downloads connect. */
export interface Dispatchers {
  /** Shared, keep-alive: HEADs and small answers (warm cache hits cost one reused connection). Made on first use. */
  readonly agent: Agent;
  /** Downloads: a connection of their own each, read by our receive path (see download-exchange.ts). */
  readonly connect: ConnectSettings;
  /** An agent whose connections go to `pin` only (a checked redirect target); a few are kept. */
  pinned(pin: PinnedAddress): Agent;
}

/** Pinned agents kept per option set (the oldest is closed beyond this). */
const PINNED_AGENTS = 16;

const cache = new Map<string, Dispatchers>();
/** The agents made so far (an option set's agent is made by its first HEAD or small request). */
const agents = new Set<Agent>();

/** One set of dispatchers per distinct option set, created once (the CA file is read once). */
export function dispatchersFor(opts: ResolvedHttpOptions): Dispatchers {
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
    connect: {
      timeoutMs: opts.connectTimeoutMs,
      tls: { rejectUnauthorized: opts.verifyTls, minVersion: opts.minTlsVersion, ...(ca ? { ca } : {}) },
    },
  };
}

/**
 * undici's Agent, loaded on first use and from its own module: undici's index also loads fetch, WebSocket, the
 * cache and cookie code (two thirds of its load time), none of which a HEAD needs. A process that sends no HEAD
 * nor small request (file:// sources only) loads none of it.
 */
function agentClass(): typeof Agent {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('undici/lib/dispatcher/agent') as typeof Agent;
}

/** Closes every shared connection (tests, shutdown). Sources resolved afterwards get new ones. */
export async function closeHttpConnections(): Promise<void> {
  const all = [...agents];
  cache.clear();
  agents.clear();
  await Promise.all(all.map((a) => a.close().catch(() => undefined)));
}
