import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { ConfigError, ImageDownloadFailed } from '@imagecache/errors';
import { closeHttpConnections, resolveSource } from '@imagecache/sources';
import { tmpDir, closeServer, listenLocal } from '@imagecache/testing';
import { caught, readAll } from './helpers';

// A self-signed certificate for 127.0.0.1, made with the openssl tool (skipped where it is missing).
let dir: string;
let certFile = '';
let server: https.Server | undefined;
let base = '';
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const maybe = hasOpenssl ? describe : describe.skip;

beforeAll(async () => {
  if (!hasOpenssl) return;
  dir = tmpDir('sources-tls-');
  certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  server = https.createServer(
    { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), maxVersion: 'TLSv1.2' },
    (req, res) => {
      res.writeHead(200, { 'content-length': '5' });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    },
  );
  base = await listenLocal(server!);
});
afterAll(async () => {
  await closeServer(server);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  await closeHttpConnections();
});

maybe('https', () => {
  it('refuses an untrusted certificate by default, for good (not retryable)', async () => {
    const err = await caught((await resolveSource(`${base}/x.img`)).show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/TLS failure/);
  });

  it('trusts a CA bundle given as caFile', async () => {
    const source = await resolveSource(`${base}/x.img`, { http: { caFile: certFile } });
    expect((await source.show()).size).toBe(5);
    expect((await readAll((await source.open()).stream)).toString()).toBe('hello');
  });

  it('skips verification when verifyTls is false', async () => {
    const source = await resolveSource(`${base}/x.img`, { http: { verifyTls: false } });
    expect((await source.show()).size).toBe(5);
  });

  it('refuses a server below minTlsVersion', async () => {
    const source = await resolveSource(`${base}/x.img`, {
      http: { caFile: certFile, minTlsVersion: 'TLSv1.3' },
    });
    const err = await caught(source.show());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
  });

  it('refuses a CA file that cannot be read with ConfigError', async () => {
    const err = await caught(
      resolveSource(`${base}/x.img`, { http: { caFile: path.join(dir, 'missing.pem') } }),
    );
    expect(err).toBeInstanceOf(ConfigError);
  });
});
