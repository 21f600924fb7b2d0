// After a planned Sentinel failover the old master stays a master (taking writes) until the sentinels turn it into
// a replica, at least 8 s later; connections must follow the switch as soon as it is announced, or what they
// write there is thrown away. A real Sentinel set on 127.0.0.1.
import {
  redisCli,
  redisServerAvailable,
  startRedisSentinel,
  waitFor,
  type RedisSentinelDeployment,
} from '@imagecache/testing';
import { connectRedis, type RedisClient } from '../src';

const available = redisServerAvailable();
const maybe = available.ok || process.env.CI === 'true' ? describe : describe.skip;

maybe('a connection to a Sentinel master', () => {
  let set: RedisSentinelDeployment;
  let client: RedisClient;

  beforeAll(async () => {
    set = await startRedisSentinel({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  }, 60_000);
  afterAll(async () => {
    client?.disconnect();
    await set?.stop();
  });

  it('writes to the new master once the sentinels announce a switch, not to the old one', async () => {
    client = connectRedis(
      { mode: 'sentinel', sentinels: set.sentinels, name: set.name, prefix: '{t}' },
      'worker',
    );
    await client.set('{t}:before', '1');
    const old = await set.master();
    await redisCli(set.sentinels[0]!.port, 'SENTINEL', 'FAILOVER', set.name);
    const promoted = await set.waitForNewMaster(old);
    // Each write goes through the connection as it is: once it lands on the new master, the connection followed.
    let n = 0;
    await waitFor(
      'a write on the new master',
      async () => {
        const key = `{t}:after-${n++}`;
        await client.set(key, '1');
        return (await redisCli(promoted, 'EXISTS', key)) === '1' ? true : undefined;
      },
      20_000,
    );
    // The old master still answers as a master (the sentinels reconfigure it later): the client left it on its own.
    expect((await redisCli(old, 'ROLE')).split('\n')[0]).toBe('master');
    expect(await redisCli(promoted, 'EXISTS', '{t}:before')).toBe('1');
  }, 60_000);
});
