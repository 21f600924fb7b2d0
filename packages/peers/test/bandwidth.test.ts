import { PeerServer, TokenBucket } from '@imagecache/peers';
import { bearer, masterPath, publishedHost, request, SECRET } from './helpers';

test('the token bucket lets a burst through, then makes takers wait for the bytes at the rate', () => {
  let now = 0;
  const bucket = new TokenBucket(1000, 500, () => now);
  expect(bucket.take(400)).toBe(0);
  expect(bucket.take(600)).toBe(500); // 500 bytes in debt: half a second
  now += 500;
  expect(bucket.take(0)).toBe(0);
  now += 10_000; // idle time refills up to the burst, no more
  expect(bucket.take(500)).toBe(0);
  expect(bucket.take(1)).toBe(1);
  expect(bucket.waitedMs).toBe(501);
});

// Only lower bounds on time: a loaded machine makes a capped download slower, never faster than the cap.
test('a capped server sends no faster than bytesPerSec, all uploads together', async () => {
  const host = await publishedHost();
  const master = await host.publish(384 * 1024);
  const rate = 512 * 1024;
  const server = new PeerServer({
    caches: [{ name: 'instance', masterDir: host.masterDir }],
    secret: SECRET,
    port: 0,
    bytesPerSec: rate,
  });
  const base = `http://127.0.0.1:${(await server.start()).port}`;
  try {
    const started = performance.now();
    const answers = await Promise.all(
      [0, 1].map(() =>
        request(base, masterPath('instance', master.name), { headers: bearer('instance', master.name) }),
      ),
    );
    const elapsed = performance.now() - started;
    for (const a of answers) expect(a.body.equals(master.bytes)).toBe(true);
    const burst = Math.max(16 * 1024, rate / 10);
    const least = ((2 * master.bytes.length - burst) / rate) * 1000;
    expect(server.throttledMs).toBeGreaterThan(0);
    expect(elapsed).toBeGreaterThanOrEqual(least * 0.95);
  } finally {
    await server.close();
    await host.close();
  }
});
