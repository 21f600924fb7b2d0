// Issue 11: checksum files go through the sources' HTTP stack, so the cache's TLS settings (http.caFile) apply to
// them as to the image itself. The server's certificate is signed by a CA made here.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { ImageDownloadFailed } from '@imagecache/errors';
import { closeHttpConnections, fetchChecksumFile } from '@imagecache/sources';
import { tmpDir, closeServer, listenLocal } from '@imagecache/testing';
import { masters, newCache } from './helpers';

const image = randomBytes(64 * 1024);
const sha256 = createHash('sha256').update(image).digest('hex');
let dir = '';
let caFile = '';
let server: https.Server;
let base = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
}

beforeAll(async () => {
  dir = tmpDir('checksum-tls-');
  caFile = path.join(dir, 'ca.pem');
  openssl(
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem'],
    ...['-days', '2', '-subj', '/CN=imagecache test CA'],
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'srv.key',
    '-out',
    'srv.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    ...['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf'],
  );
  server = https.createServer(
    { key: fs.readFileSync(path.join(dir, 'srv.key')), cert: fs.readFileSync(path.join(dir, 'srv.pem')) },
    (req, res) => {
      const body =
        req.url === '/SHA256SUMS'
          ? Buffer.from(`${sha256}  disk.img\n`)
          : req.url === '/disk.img'
            ? image
            : undefined;
      if (!body) return res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  );
  base = await listenLocal(server);
});
afterAll(async () => {
  await closeServer(server);
  fs.rmSync(dir, { recursive: true, force: true });
  await closeHttpConnections();
});

describe('checksum file behind http.caFile', () => {
  it('is refused without the CA (TLS failure, not retried) and fetched with it', async () => {
    const err = await fetchChecksumFile(`${base}/SHA256SUMS`, 'disk.img').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect((err as ImageDownloadFailed).retryable).toBe(false);
    expect((err as Error).message).toMatch(/TLS failure/);
    await expect(fetchChecksumFile(`${base}/SHA256SUMS`, 'disk.img', { http: { caFile } })).resolves.toEqual({
      algo: 'sha256',
      value: sha256,
    });
  });

  it("a fetch with a checksum URL uses the cache's CA bundle for both files", async () => {
    const { cache, root, dest } = newCache({ sources: { http: { caFile } } });
    const result = await cache.fetchImage(`${base}/disk.img`, dest('disk.img'), {
      expectedChecksum: `${base}/SHA256SUMS`,
    });
    expect(result.checksum).toEqual({ algo: 'sha256', value: sha256 });
    expect(fs.readFileSync(dest('disk.img')).equals(image)).toBe(true);
    expect(masters(cache)).toHaveLength(1);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
