import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from './files';
import { redisCli, startRedisServer, waitFor, type RedisServerProcess } from './redis-server';

export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId?: string;
  /** Hash slots it serves (masters), as `[from, to]` ranges. */
  slots: [number, number][];
  failed: boolean;
}

export interface RedisClusterDeployment {
  /** Every node's address, as a `redis.cluster` section lists them. */
  nodes: { host: string; port: number }[];
  /** The node processes, by port (a killed one stays here, exited). */
  processes: Map<number, RedisServerProcess>;
  /** The cluster's view of itself, asked of a live node. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The master serving `key`'s hash slot (a `{tag}` prefix: the tag's slot) and its replicas' ports. */
  masterOf(key: string): Promise<{ port: number; replicas: number[]; slot: number }>;
  /** Resolves once `key`'s slot is served by a master other than `formerPort` and the cluster state is ok. */
  waitForNewMaster(key: string, formerPort: number, timeoutMs?: number): Promise<number>;
  /** Resolves once every live node says the cluster is ok and every live replica is in sync with its master. */
  inSync(timeoutMs?: number): Promise<void>;
  /** Starts a killed node again on its port: it rejoins the cluster (a former master as a replica). */
  restart(port: number): Promise<void>;
  /** Kills every node and removes the folder. */
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster on 127.0.0.1: `masters` masters, each with `replicasPerMaster` replicas, each node a
 * `redis-server --cluster-enabled yes` of its own (free ports, their bus ports free too, no persistence), joined by
 * `redis-cli --cluster create`. `nodeTimeoutMs` is `cluster-node-timeout`: a master unreachable that long is
 * failed and its replica promoted (replicas are always eligible: `cluster-replica-validity-factor 0`).
 * Resolves once every slot is served and every replica is in sync.
 */
export async function startRedisCluster(
  opts: { masters?: number; replicasPerMaster?: number; nodeTimeoutMs?: number } = {},
): Promise<RedisClusterDeployment> {
  const masters = opts.masters ?? 3;
  const perMaster = opts.replicasPerMaster ?? 1;
  const count = masters * (1 + perMaster);
  const dir = tmpDir('imagecache-redis-cluster-');
  const processes = new Map<number, RedisServerProcess>();
  const nodeArgs = (port: number) => [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    path.join(dir, `nodes-${port}.conf`),
    '--cluster-node-timeout',
    String(opts.nodeTimeoutMs ?? 1000),
    '--cluster-replica-validity-factor',
    '0',
    '--cluster-require-full-coverage',
    'no',
    '--save',
    '',
    '--appendonly',
    'no',
    // No delay before a full resync (a replica that can't continue where it was): it would wait 5 s.
    '--repl-diskless-sync-delay',
    '0',
  ];
  const stop = async () => {
    await Promise.all([...processes.values()].map((p) => p.kill('SIGKILL')));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const node = await startRedisServer(dir, nodeArgs, { busPort: true });
      processes.set(node.port, node);
    }
    const ports = [...processes.keys()];
    await redisCli(
      ports[0]!,
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      String(perMaster),
      '--cluster-yes',
    );
    const restart = async (port: number) => {
      // Its nodes file keeps its identity: it rejoins, as a replica of the master that replaced it.
      processes.set(port, await startRedisServer(dir, nodeArgs, { port }));
    };
    const deployment = clusterDeployment(processes, stop, restart);
    await waitFor(
      'the cluster to be ready',
      async () => {
        for (const p of ports) {
          if (!(await redisCli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
        }
        const nodes = await deployment.topology();
        const replicas = nodes.filter((n) => n.role === 'replica');
        if (nodes.length !== count || replicas.length !== masters * perMaster) return undefined;
        for (const r of replicas) {
          if (!(await redisCli(r.port, 'INFO', 'replication')).includes('master_link_status:up'))
            return undefined;
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

function clusterDeployment(
  processes: Map<number, RedisServerProcess>,
  stop: () => Promise<void>,
  restart: (port: number) => Promise<void>,
): RedisClusterDeployment {
  const live = () => [...processes.values()].filter((p) => p.running()).map((p) => p.port);
  const ask = async (...args: string[]) => {
    let last: unknown;
    for (const port of live()) {
      try {
        return await redisCli(port, ...args);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error('no live cluster node');
  };
  const topology = async () => parseNodes(await ask('CLUSTER', 'NODES'));
  const masterOf = async (key: string) => {
    const slot = Number(await ask('CLUSTER', 'KEYSLOT', key));
    const nodes = await topology();
    const master = nodes.find(
      (n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b),
    );
    if (!master) throw new Error(`no master serves slot ${slot}`);
    const replicas = nodes.filter((n) => n.masterId === master.id && !n.failed).map((n) => n.port);
    return { port: master.port, replicas, slot };
  };
  return {
    nodes: [...processes.keys()].map((port) => ({ host: '127.0.0.1', port })),
    processes,
    topology,
    masterOf,
    restart,
    waitForNewMaster: (key, formerPort, timeoutMs = 30_000) =>
      waitFor(
        `a new master for ${key}`,
        async () => {
          const m = await masterOf(key);
          if (m.port === formerPort) return undefined;
          // Asked of the new master itself: it serves the slot and the cluster agrees.
          if (!(await redisCli(m.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
          return m.port;
        },
        timeoutMs,
      ),
    inSync: async (timeoutMs = 30_000) => {
      await waitFor(
        'every replica in sync',
        async () => {
          const nodes = (await topology()).filter((n) => !n.failed && live().includes(n.port));
          for (const n of nodes) {
            if (!(await redisCli(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
            if (n.role !== 'replica') continue;
            if (!(await redisCli(n.port, 'INFO', 'replication')).includes('master_link_status:up'))
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

/** `CLUSTER NODES` lines: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`. */
function parseNodes(text: string): ClusterNodeInfo[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
      const flagSet = new Set(flags!.split(','));
      return {
        id: id!,
        port: Number(/:(\d+)/.exec(addr!)![1]),
        role: flagSet.has('master') ? 'master' : 'replica',
        ...(master !== '-' ? { masterId: master } : {}),
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [a, b] = s.split('-').map(Number);
            return [a!, b ?? a!] as [number, number];
          }),
        failed: flagSet.has('fail') || flagSet.has('fail?'),
      };
    });
}
