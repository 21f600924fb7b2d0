import { ConfigError, UsageError } from '@imagecache/errors';
import { parseHostConfig } from '@imagecache/config';
import { JOB_KINDS, parseQueueName, queueNames } from '@imagecache/queue';

/** Names a configuration may declare: at the edges of the grammar. */
const HOSTS = ['node-a', 'n', 'node-a.rack_1.example', 'N0', 'a'.repeat(253)];
const CACHES = ['instance', 'tftp', 'c', 'Cache_1-b', 'x'.repeat(64)];

function configWith(host: string, cache: string) {
  return parseHostConfig({ host, caches: [{ name: cache, masterDir: '/var/lib/imagecache/m' }] });
}

test('every queue name built from a valid configuration parses back to its parts', () => {
  for (const host of HOSTS) {
    for (const cache of CACHES) {
      const config = configWith(host, cache);
      const c = config.caches[0]!.name;
      expect(parseQueueName(queueNames.fetch(config.host, c))).toEqual({
        name: `fetch.${c}@${host}`,
        kind: 'fetch',
        host,
        cache: c,
      });
      expect(parseQueueName(queueNames.clean(config.host, c))).toMatchObject({
        kind: 'clean',
        host,
        cache: c,
      });
      expect(parseQueueName(queueNames.cleanCaches(config.host))).toMatchObject({
        kind: 'clean-caches',
        host,
        cache: '',
      });
    }
  }
  expect(JOB_KINDS).toEqual(['fetch', 'clean', 'clean-caches']);
});

test.each([
  ['a cache name with a dot', 'node-a', 'in.stance'],
  ['a cache name over 64 characters', 'node-a', 'x'.repeat(65)],
  ['a host name with @', 'node@a', 'instance'],
  ['a host name with :', 'node:a', 'instance'],
  ['a host name over 253 characters', 'a'.repeat(254), 'instance'],
  ['a name starting with -', '-node', 'instance'],
])(
  '%s: refused by the configuration (CONFIG_ERROR) and by the queue names (USAGE_ERROR)',
  (_, host, cache) => {
    expect(() => configWith(host, cache)).toThrow(ConfigError);
    expect(() => queueNames.fetch(host, cache)).toThrow(UsageError);
  },
);

test('names that are not ours parse to nothing', () => {
  for (const name of [
    'fetch@h',
    'fetch.a.b@h',
    'other.a@h',
    'clean-caches.x@h',
    'fetch.a@',
    'bull:fetch.a@h',
  ])
    expect(parseQueueName(name)).toBeUndefined();
});
