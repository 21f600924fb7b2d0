// Issue 12, item 4: the distributed mode on a real Sentinel set (1 master, 2 replicas, 3 sentinels on 127.0.0.1):
// clients ask the sentinels for the master, and follow it when the sentinels fail it over.
import { redisCli, startRedisSentinel } from '@imagecache/testing';
import { cutOff, describeDeployment } from './deployment-suite';

describeDeployment('on a Redis Sentinel set', async () => {
  const set = await startRedisSentinel({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  const promotion = (former: number) => {
    const promoted = set.waitForNewMaster(former);
    promoted.catch(() => undefined);
    return { former, promoted };
  };
  return {
    section: { sentinels: set.sentinels, name: set.name },
    config: (prefix) => ({ mode: 'sentinel', sentinels: set.sentinels, name: set.name, prefix }),
    killMaster: async () => {
      const port = await set.master();
      await set.servers.get(port)!.kill('SIGKILL');
      return promotion(port);
    },
    cutReplicas: async () => {
      const port = await set.master();
      const replicas = [...set.servers.values()].filter((s) => s.running() && s.port !== port);
      return cutOff(
        port,
        replicas.map((r) => r.pid),
      );
    },
    switchover: async () => {
      // SENTINEL FAILOVER: a replica is promoted at once, the old master is made its replica.
      const port = await set.master();
      await redisCli(set.sentinels[0]!.port, 'SENTINEL', 'FAILOVER', set.name);
      return promotion(port);
    },
    inSync: () => set.inSync(),
    stop: () => set.stop(),
  };
});
