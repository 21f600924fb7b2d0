import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from './files';
import { redisCli, startRedisServer, waitFor, type RedisServerProcess } from './redis-server';

export interface RedisSentinelDeployment {
  /** The master group's name, as `redis.name` gives it. */
  name: string;
  /** The sentinels' addresses, as a `redis.sentinels` section lists them. */
  sentinels: { host: string; port: number }[];
  /** The data servers (master and replicas), by port (a killed one stays here, exited). */
  servers: Map<number, RedisServerProcess>;
  sentinelProcesses: RedisServerProcess[];
  /** The master's port, as the sentinels report it now. */
  master(): Promise<number>;
  /** Resolves once the sentinels report a master other than `formerPort`, and it answers as a master. */
  waitForNewMaster(formerPort: number, timeoutMs?: number): Promise<number>;
  /** Resolves once every live data server but the master replicates the master, in sync. */
  inSync(timeoutMs?: number): Promise<void>;
  /** Kills every process and removes the folder. */
  stop(): Promise<void>;
}

/**
 * A real Sentinel set on 127.0.0.1: one master, `replicas` replicas (`--replicaof`) and `sentinels` sentinels
 * (`redis-server sentinel.conf --sentinel`, quorum a majority), each on a free port, no persistence. A master
 * unreachable for `downAfterMs` (`down-after-milliseconds`) is failed over to a replica. Resolves once every
 * replica is in sync and every sentinel knows every replica and every other sentinel (so a failover can be
 * agreed at once).
 */
export async function startRedisSentinel(
  opts: { replicas?: number; sentinels?: number; downAfterMs?: number; name?: string } = {},
): Promise<RedisSentinelDeployment> {
  const name = opts.name ?? 'imagecache';
  const replicaCount = opts.replicas ?? 2;
  const sentinelCount = opts.sentinels ?? 3;
  const dir = tmpDir('imagecache-redis-sentinel-');
  const servers = new Map<number, RedisServerProcess>();
  const sentinelProcesses: RedisServerProcess[] = [];
  const stop = async () => {
    await Promise.all([...servers.values(), ...sentinelProcesses].map((p) => p.kill('SIGKILL')));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // No delay before a full resync (a replica that can't continue where it was): it would wait 5 s for company.
  const data = ['--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'];
  try {
    const master = await startRedisServer(dir, () => data);
    servers.set(master.port, master);
    for (let i = 0; i < replicaCount; i++) {
      const r = await startRedisServer(dir, () => [...data, '--replicaof', '127.0.0.1', String(master.port)]);
      servers.set(r.port, r);
    }
    for (let i = 0; i < sentinelCount; i++) {
      // A sentinel rewrites its configuration file (what it learns): one file each, in the folder.
      const conf = path.join(dir, `sentinel-${i}.conf`);
      fs.writeFileSync(
        conf,
        [
          `sentinel monitor ${name} 127.0.0.1 ${master.port} ${Math.floor(sentinelCount / 2) + 1}`,
          `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} ${replicaCount}`,
          '',
        ].join('\n'),
      );
      sentinelProcesses.push(await startRedisServer(dir, () => [conf], { sentinel: true }));
    }
    const deployment = sentinelDeployment(name, servers, sentinelProcesses, stop);
    await waitFor(
      'the sentinel set to be ready',
      async () => {
        for (const r of [...servers.values()].filter((s) => s !== master)) {
          if (!(await redisCli(r.port, 'INFO', 'replication')).includes('master_link_status:up'))
            return undefined;
        }
        for (const s of sentinelProcesses) {
          const replicas = countEntries(await redisCli(s.port, 'SENTINEL', 'REPLICAS', name));
          const others = countEntries(await redisCli(s.port, 'SENTINEL', 'SENTINELS', name));
          if (replicas < replicaCount || others < sentinelCount - 1) return undefined;
        }
        return true;
      },
      30_000,
    );
    return deployment;
  } catch (err) {
    await stop();
    throw err;
  }
}

function sentinelDeployment(
  name: string,
  servers: Map<number, RedisServerProcess>,
  sentinelProcesses: RedisServerProcess[],
  stop: () => Promise<void>,
): RedisSentinelDeployment {
  const master = async () => {
    let last: unknown;
    for (const s of sentinelProcesses.filter((p) => p.running())) {
      try {
        const out = await redisCli(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
        return Number(out.split('\n')[1]);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error('no live sentinel');
  };
  return {
    name,
    sentinels: sentinelProcesses.map((s) => ({ host: '127.0.0.1', port: s.port })),
    servers,
    sentinelProcesses,
    master,
    waitForNewMaster: (formerPort, timeoutMs = 30_000) =>
      waitFor(
        'a new master',
        async () => {
          const port = await master();
          if (port === formerPort) return undefined;
          if (!(await redisCli(port, 'ROLE')).startsWith('master')) return undefined;
          return port;
        },
        timeoutMs,
      ),
    inSync: async (timeoutMs = 30_000) => {
      await waitFor(
        'every replica in sync',
        async () => {
          const m = await master();
          for (const r of [...servers.values()].filter((x) => x.running() && x.port !== m)) {
            const info = await redisCli(r.port, 'INFO', 'replication');
            if (!info.includes(`master_port:${m}`) || !info.includes('master_link_status:up'))
              return undefined;
          }
          return true;
        },
        timeoutMs,
      );
    },
    stop,
  };
}

/** Entries of a `SENTINEL REPLICAS|SENTINELS` reply as redis-cli prints it: one `name` field per entry. */
function countEntries(text: string): number {
  return text.split('\n').filter((l) => l.trim() === 'name').length;
}
