import { loadConfig, parseHostConfig, peerAdvertiseUrl } from '@imagecache/config';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { tmpDir } from '@imagecache/testing';
import { configError } from './helpers';

const caches = [{ name: 'instance', masterDir: '/srv/master' }];
const SECRET = 'sixteen chars at least, shared';

test('peers: every key, sizes and durations in their units', () => {
  const c = parseHostConfig({
    caches,
    peers: {
      enabled: true,
      secret: SECRET,
      group: 'rack-1',
      port: 8470,
      bind: '0.0.0.0',
      advertiseUrl: 'https://conductor-1.example:8470',
      uploadConcurrency: 8,
      bandwidth: '100MiB',
      tls: { certFile: '/etc/ic/peer.pem', keyFile: '/etc/ic/peer.key', caFile: '/etc/ic/ca.pem' },
      tokenTtl: '2m',
    },
  });
  expect(c.peers).toEqual({
    enabled: true,
    secret: SECRET,
    group: 'rack-1',
    port: 8470,
    bind: '0.0.0.0',
    advertiseUrl: 'https://conductor-1.example:8470',
    uploadConcurrency: 8,
    bandwidth: 100 * 2 ** 20,
    tls: { certFile: '/etc/ic/peer.pem', keyFile: '/etc/ic/peer.key', caFile: '/etc/ic/ca.pem' },
    tokenTtl: 120,
  });
});

test('enabled without a secret, and bad values, are refused without quoting the secret', () => {
  const err = configError(() => parseHostConfig({ caches, peers: { enabled: true } }));
  expect(err.message).toContain('peers.secret: is required when peers.enabled is true');
  const bad = configError(() =>
    parseHostConfig({
      caches,
      peers: {
        secret: 'short secret',
        port: 70000,
        uploadConcurrency: 0,
        tokenTtl: 0,
        bandwidth: 0,
        group: 'a b',
        tls: { certFile: 'rel.pem' },
        advertiseUrl: 'ftp://x',
        uploadConcurency: 2,
      },
    }),
  );
  for (const key of [
    'secret',
    'port',
    'uploadConcurrency',
    'tokenTtl',
    'bandwidth',
    'group',
    'tls.certFile',
    'tls.keyFile',
    'advertiseUrl',
  ])
    expect(bad.message).toContain(`peers.${key}:`);
  expect(bad.message).toContain('peers.uploadConcurency: unknown key (did you mean uploadConcurrency?)');
  expect(bad.message).not.toContain('short secret');
});

test('IMAGECACHE_PEERS_SECRET sets the secret', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'host.json');
  fs.writeFileSync(file, JSON.stringify({ caches, peers: { enabled: true } }));
  const c = loadConfig({ file, env: { IMAGECACHE_PEERS_SECRET: SECRET } });
  expect(c.peers.secret).toBe(SECRET);
  const err = configError(() => loadConfig({ file, env: { IMAGECACHE_PEERS_SECRET: 'too short' } }));
  expect(err.message).toContain(
    'peers.secret: must be at least 16 characters (from IMAGECACHE_PEERS_SECRET)',
  );
  expect(err.message).not.toContain('too short');
});

test('the advertised URL: as configured, else from bind and port', () => {
  const peers = parseHostConfig({ caches }).peers;
  expect(peerAdvertiseUrl(peers, 8470)).toBe('http://127.0.0.1:8470');
  expect(peerAdvertiseUrl(peers, 8470, '::1')).toBe('http://[::1]:8470');
  expect(peerAdvertiseUrl({ ...peers, tls: { certFile: '/c', keyFile: '/k' } }, 1, '0.0.0.0')).toBe(
    `https://${os.hostname()}:1`,
  );
  expect(peerAdvertiseUrl({ ...peers, advertiseUrl: 'http://h.example:9/' }, 1)).toBe('http://h.example:9');
});
