import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ImageAuthRequired, ImageDownloadFailed } from '@imagecache/errors';
import { PeerServer, peerMasterUrl, peerSourceFor, peerTokenName, signPeerToken } from '@imagecache/peers';
import { closeHttpConnections } from '@imagecache/sources';
import { publishedHost, SECRET, type PublishedHost } from './helpers';

let host: PublishedHost;
let server: PeerServer;
let base = '';
let master: { name: string; bytes: Buffer };

beforeAll(async () => {
  host = await publishedHost();
  master = await host.publish(2 * 1024 * 1024 + 5);
  server = new PeerServer({
    caches: [{ name: 'instance', masterDir: host.masterDir }],
    secret: SECRET,
    port: 0,
  });
  base = `http://127.0.0.1:${(await server.start()).port}`;
});

afterAll(async () => {
  await closeHttpConnections();
  await server.close();
  await host.close();
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const token = () => signPeerToken(SECRET, peerTokenName('instance', master.name));

test('show() tells the size and vouches for the recorded sha256; open() streams the master; a resume gets the rest', async () => {
  const source = peerSourceFor({
    url: peerMasterUrl(base, 'instance', master.name),
    token: token(),
    expectedSha256: sha256(master.bytes).toUpperCase(),
    expectedSize: master.bytes.length,
  });
  expect(source.kind).toBe('http');
  const info = await source.show();
  expect(info.size).toBe(master.bytes.length);
  expect(info.checksum).toEqual({ algo: 'sha256', value: sha256(master.bytes) });
  expect(info.validator).toMatch(/^"/);
  const whole = await source.open();
  expect((await readAll(whole.stream)).equals(master.bytes)).toBe(true);
  const offset = 1_234_567;
  const rest = await source.open({ offset, validator: info.validator });
  expect(rest.start).toBe(offset);
  expect(rest.totalSize).toBe(master.bytes.length);
  expect((await readAll(rest.stream)).equals(master.bytes.subarray(offset))).toBe(true);
});

test('a token function gives each request a fresh token', async () => {
  let made = 0;
  const source = peerSourceFor({
    url: peerMasterUrl(base, 'instance', master.name),
    token: () => {
      made++;
      return token();
    },
  });
  await source.show();
  const body = await source.open({ offset: 10, validator: (await source.show()).validator });
  expect((await readAll(body.stream)).length).toBe(master.bytes.length - 10);
  expect(made).toBe(4); // the constructor's check, then one per request
});

test('a peer announcing another size than recorded is refused before any byte; a bad token is an auth error', async () => {
  const url = peerMasterUrl(base, 'instance', master.name);
  const wrongSize = peerSourceFor({ url, token: token(), expectedSize: master.bytes.length + 1 });
  const err = await wrongSize.show().catch((e) => e);
  expect(err).toBeInstanceOf(ImageDownloadFailed);
  expect(err.retryable).toBe(false);
  await expect(wrongSize.open()).rejects.toBeInstanceOf(ImageDownloadFailed);
  const stale = signPeerToken(SECRET, peerTokenName('instance', master.name), 60, Date.now() - 120_000);
  const refused = await peerSourceFor({ url, token: stale })
    .show()
    .catch((e) => e);
  expect(refused).toBeInstanceOf(ImageAuthRequired);
  expect(JSON.stringify(refused.toJSON())).not.toContain(stale.split('.')[1]);
});
