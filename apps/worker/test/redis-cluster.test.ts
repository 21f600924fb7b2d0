// Issue 12, item 4: the distributed mode on a real Redis Cluster (3 masters, 3 replicas on 127.0.0.1), the key
// prefix a hash tag, so every key of the deployment lives in one slot of one master.
import { redisCli, startRedisCluster } from '@imagecache/testing';
import { cutOff, describeDeployment } from './deployment-suite';

describeDeployment('on a Redis Cluster', async () => {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
  const promotion = (prefix: string, former: number) => {
    const promoted = cluster.waitForNewMaster(prefix, former);
    promoted.catch(() => undefined);
    return { former, promoted };
  };
  return {
    section: { cluster: cluster.nodes },
    config: (prefix) => ({ mode: 'cluster', cluster: cluster.nodes, prefix }),
    killMaster: async (prefix) => {
      const master = await cluster.masterOf(prefix);
      await cluster.processes.get(master.port)!.kill('SIGKILL');
      return promotion(prefix, master.port);
    },
    cutReplicas: async (prefix) => {
      const master = await cluster.masterOf(prefix);
      return cutOff(
        master.port,
        master.replicas.map((port) => cluster.processes.get(port)!.pid),
      );
    },
    switchover: async (prefix) => {
      // CLUSTER FAILOVER, sent to the replica: it catches up with its master, then the two swap roles.
      let master = await cluster.masterOf(prefix);
      if (master.replicas.length === 0) {
        // Its replica was killed by a failover before: started again, it rejoins as this master's replica.
        const gone = [...cluster.processes.values()].find((p) => !p.running())!;
        await cluster.restart(gone.port);
        await cluster.inSync();
        master = await cluster.masterOf(prefix);
      }
      await redisCli(master.replicas[0]!, 'CLUSTER', 'FAILOVER');
      return promotion(prefix, master.port);
    },
    inSync: () => cluster.inSync(),
    stop: () => cluster.stop(),
  };
});
