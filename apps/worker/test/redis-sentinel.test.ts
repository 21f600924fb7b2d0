// Issue 12, item 4: the distributed mode on a real Sentinel set (1 master, 2 replicas, 3 sentinels on 127.0.0.1):
// clients ask the sentinels for the master, and follow it when the sentinels fail it over.
import { startRedisSentinel } from '@imagecache/testing';
import { describeDeployment } from './deployment-suite';

describeDeployment('on a Redis Sentinel set', async () => {
  const set = await startRedisSentinel({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  return {
    section: { sentinels: set.sentinels, name: set.name },
    config: (prefix) => ({ mode: 'sentinel', sentinels: set.sentinels, name: set.name, prefix }),
    killMaster: async () => {
      const port = await set.master();
      await set.servers.get(port)!.kill('SIGKILL');
      const promoted = set.waitForNewMaster(port);
      promoted.catch(() => undefined);
      return { killed: port, promoted };
    },
    stop: () => set.stop(),
  };
});
