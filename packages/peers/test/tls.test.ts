import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PeerServer, peerMasterUrl, peerSourceFor, peerTokenName, signPeerToken } from '@imagecache/peers';
import { closeHttpConnections } from '@imagecache/sources';
import { tmpDir } from '@imagecache/testing';
import { bearer, masterPath, publishedHost, request, SECRET } from './helpers';

test('TLS: a self-signed certificate, trusted by the client, serves the master', async () => {
  const dir = tmpDir('imagecache-peers-tls-');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'peer.key', '-out', 'peer.pem'],
      ...['-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  const host = await publishedHost();
  const master = await host.publish(200_000);
  const server = new PeerServer({
    caches: [{ name: 'instance', masterDir: host.masterDir }],
    secret: SECRET,
    port: 0,
    tls: { certFile: path.join(dir, 'peer.pem'), keyFile: path.join(dir, 'peer.key') },
  });
  const port = (await server.start()).port;
  try {
    const ca = fs.readFileSync(path.join(dir, 'peer.pem'));
    const p = masterPath('instance', master.name);
    const ok = await request(`https://127.0.0.1:${port}`, p, {
      headers: bearer('instance', master.name),
      ca,
    });
    expect(ok.status).toBe(200);
    expect(ok.body.equals(master.bytes)).toBe(true);
    expect((await request(`https://127.0.0.1:${port}`, p, { ca })).status).toBe(401);
    // Not trusted without the certificate.
    await expect(
      request(`https://127.0.0.1:${port}`, p, { headers: bearer('instance', master.name) }),
    ).rejects.toThrow(/self-signed|certificate/i);
    // The peer source trusts the fleet's CA through http.caFile, and only then.
    const url = peerMasterUrl(`https://127.0.0.1:${port}`, 'instance', master.name);
    const token = () => signPeerToken(SECRET, peerTokenName('instance', master.name));
    const info = await peerSourceFor({ url, token, http: { caFile: path.join(dir, 'peer.pem') } }).show();
    expect(info.size).toBe(master.bytes.length);
    await expect(peerSourceFor({ url, token }).show()).rejects.toMatchObject({
      code: 'IMAGE_DOWNLOAD_FAILED',
    });
  } finally {
    await closeHttpConnections();
    await server.close();
    await host.close();
  }
});
