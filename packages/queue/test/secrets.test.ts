import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { CredentialsExpired, CredentialsNotOwned } from '@imagecache/errors';
import { JOB_NAMES, SecretStore, keys, secretTexts, type JobSecret } from '@imagecache/queue';

/** A job's secret has named fields, is bound to its job and its kind. Real Redis, a prefix of this test's own. */
const prefix = `{imagecache-test-${randomBytes(4).toString('hex')}}`;
let redis: Redis;
let store: SecretStore;

beforeAll(() => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  store = new SecretStore(redis, prefix);
});

afterAll(async () => {
  const left = await redis.keys(`${prefix}*`);
  if (left.length) await redis.del(...left);
  redis.disconnect();
});

const fetchSecret: JobSecret = {
  kind: JOB_NAMES.fetch,
  owner: 'fetch.a@h~1',
  href: 'https://bob:hunter22@images.local/disk.img',
  expectedChecksum: 'sha256:https://images.local/SHA256SUMS?token=tok-9f3e',
  auth: { type: 'bearer', token: 'bearer-7c1d' },
};

test('a fetch secret comes back by name to its own job, typed by its kind', async () => {
  const ref = await store.stash(fetchSecret);
  expect(ref).toMatch(/^[0-9a-f-]{36}$/);
  const back = await store.claim(ref!, 'fetch.a@h~1', JOB_NAMES.fetch);
  expect([back.href, back.expectedChecksum, back.auth]).toEqual([
    fetchSecret.href,
    fetchSecret.expectedChecksum,
    { type: 'bearer', token: 'bearer-7c1d' },
  ]);
});

test('another job, or a job of another kind, gets none (CredentialsNotOwned); the secret stays', async () => {
  const ref = (await store.stash(fetchSecret))!;
  await expect(store.claim(ref, 'fetch.a@h~2', JOB_NAMES.fetch)).rejects.toBeInstanceOf(CredentialsNotOwned);
  await expect(store.claim(ref, 'fetch.a@h~1', JOB_NAMES.cleanCaches)).rejects.toBeInstanceOf(
    CredentialsNotOwned,
  );
  await store.release(ref, 'fetch.a@h~2');
  expect(await redis.exists(keys.secret(prefix, ref))).toBe(1);
  await store.release(ref, 'fetch.a@h~1');
  await expect(store.claim(ref, 'fetch.a@h~1', JOB_NAMES.fetch)).rejects.toBeInstanceOf(CredentialsExpired);
});

test('a clean-caches secret keeps each image with its own auth', async () => {
  const secret: JobSecret = {
    kind: JOB_NAMES.cleanCaches,
    owner: 'clean-caches@h~3',
    images: [
      { href: 'https://images.local/a.img' },
      {
        href: 'https://images.local/b.img',
        auth: { type: 'basic', username: 'user-b', password: 'pw-b-5512' },
      },
    ],
  };
  const ref = (await store.stash(secret))!;
  const back = await store.claim(ref, 'clean-caches@h~3', JOB_NAMES.cleanCaches);
  expect(back.images).toEqual(secret.images);
  expect(secretTexts(back)).toContain('pw-b-5512');
  expect(secretTexts(back)).not.toContain('user-b'); // a user name is no secret
});

test('nothing is stored for a request without credentials', async () => {
  const ref = await store.stash({
    kind: JOB_NAMES.fetch,
    owner: 'fetch.a@h~4',
    href: 'https://images.local/x',
  });
  expect(ref).toBeUndefined();
});

test('the texts to scrub hold every credential of a fetch secret', () => {
  const texts = secretTexts(fetchSecret);
  for (const t of ['hunter22', 'tok-9f3e', 'bearer-7c1d']) expect(texts).toContain(t);
});

test('a record of another shape (stored by position, as before) is read as dropped: CredentialsExpired', async () => {
  const ref = '0b5e1a2c-1111-4222-8333-944455556666';
  const legacy = { owner: 'fetch.a@h~5', hrefs: ['https://u:p@images.local/x'], auth: [] };
  await redis.set(keys.secret(prefix, ref), JSON.stringify(legacy), 'EX', 60);
  await expect(store.claim(ref, 'fetch.a@h~5', JOB_NAMES.fetch)).rejects.toBeInstanceOf(CredentialsExpired);
});
