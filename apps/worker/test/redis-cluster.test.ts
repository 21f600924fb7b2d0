// Issue 12, item 4: the distributed mode on a real Redis Cluster (3 masters, 3 replicas on 127.0.0.1), the key
// prefix a hash tag, so every key of the deployment lives in one slot of one master.
import { startRedisCluster } from '@imagecache/testing';
import { describeDeployment } from './deployment-suite';

describeDeployment('on a Redis Cluster', async () => {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
  return {
    section: { cluster: cluster.nodes },
    config: (prefix) => ({ mode: 'cluster', cluster: cluster.nodes, prefix }),
    killMaster: async (prefix) => {
      const master = await cluster.masterOf(prefix);
      await cluster.processes.get(master.port)!.kill('SIGKILL');
      const promoted = cluster.waitForNewMaster(prefix, master.port);
      promoted.catch(() => undefined);
      return { killed: master.port, promoted };
    },
    stop: () => cluster.stop(),
  };
});
