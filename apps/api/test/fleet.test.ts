import type { FastifyInstance } from 'fastify';
import { buildApi } from '@imagecache/api';
import { connectRedis, FleetDirectory, type FleetView, type RedisClient } from '@imagecache/queue';
import { basic, dropPrefix, redisConfig } from './helpers';

// GET /v1/fleet (issue 12): which hosts of the fleet hold which image, read from the directory in Redis.
const redis = redisConfig();
const AUTH = basic('admin', 'board-pw');
let app: FastifyInstance;
let client: RedisClient;

beforeAll(async () => {
  client = connectRedis(redis, 'worker');
  app = await buildApi({
    redis,
    board: { username: 'admin', password: 'board-pw' },
    logger: false,
    defaultMetrics: false,
  });
});

afterAll(async () => {
  await app.close();
  client.disconnect();
  await dropPrefix(redis.prefix);
});

test('lists every image with its holders, live or gone, and the peers takers skipped', async () => {
  const dir = new FleetDirectory(client, redis.prefix);
  const record = {
    name: '555bb464-6289-5d7b-ab3a-88416e1c9188',
    validator: '"v1"',
    cache: 'instance',
    sha256: 'a'.repeat(64),
    size: 1024,
    checksum: { algo: 'sha256' as const, value: 'a'.repeat(64) },
    converted: false,
    publishedAt: 0,
  };
  await dir.beat({ host: 'node-a', url: 'http://10.0.0.1:9400', group: 'rack1' }, 10_000, 'replica-1');
  await dir.publish({ ...record, host: 'node-a' });
  await dir.publish({ ...record, host: 'node-b' }); // node-b never beat: gone
  await dir.reportFailure('node-b', 'unverified');

  const none = await app.inject({ method: 'GET', url: '/v1/fleet' });
  expect(none.statusCode).toBe(401);
  const r = await app.inject({ method: 'GET', url: '/v1/fleet', headers: { authorization: AUTH } });
  expect(r.statusCode).toBe(200);
  const view = r.json<FleetView>();
  expect(view.images).toHaveLength(1);
  expect(view.images[0]).toMatchObject({ name: record.name, validator: '"v1"' });
  expect(view.images[0]!.holders).toEqual([
    expect.objectContaining({
      host: 'node-a',
      cache: 'instance',
      live: true,
      group: 'rack1',
      url: 'http://10.0.0.1:9400',
    }),
    expect.objectContaining({ host: 'node-b', cache: 'instance', live: false, sha256: record.sha256 }),
  ]);
  expect(view.skippedPeers).toEqual({ 'node-b/unverified': 1 });
  expect(view.hosts).toEqual([
    {
      host: 'node-a',
      live: true,
      url: 'http://10.0.0.1:9400',
      urls: ['http://10.0.0.1:9400'],
      group: 'rack1',
    },
  ]);

  // An eviction takes the holder out; an image nobody holds leaves the listing.
  await dir.evict('node-a', 'instance', record.name);
  await dir.evict('node-b', 'instance', record.name);
  const after = await app.inject({ method: 'GET', url: '/v1/fleet', headers: { authorization: AUTH } });
  expect(after.json<FleetView>().images).toEqual([]);
});
