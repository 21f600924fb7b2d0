// H2 (issue 11): a redirect never leads to a link-local address (a metadata service), to http.blockedNetworks,
// nor from https down to http unless allowed. Checked on HEAD (show) and GET (open) alike.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { RedirectRefused } from '@imagecache/errors';
import { closeHttpConnections, resolveSource, type SourceOptions } from '@imagecache/sources';
import { tmpDir } from '@imagecache/testing';
import { caught, readAll } from './helpers';

/** A server answering `/to?u=URL` with a 302 to URL and anything else with "hello"; it counts requests. */
function start(host: string): Promise<{ server: http.Server; base: string; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => handle(req, res, hits));
  return new Promise((resolve) =>
    server.listen(0, host, () =>
      resolve({ server, base: `http://${host}:${(server.address() as AddressInfo).port}`, hits }),
    ),
  );
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, hits: string[]): void {
  hits.push(`${req.method} ${req.url}`);
  const u = new URL(req.url ?? '/', 'http://x');
  if (u.pathname === '/to') {
    res.writeHead(302, { location: u.searchParams.get('u') ?? '/' }).end();
    return;
  }
  res.writeHead(200, { 'content-length': '5' });
  res.end(req.method === 'HEAD' ? undefined : 'hello');
}

let origin: Awaited<ReturnType<typeof start>>;
let second: Awaited<ReturnType<typeof start>>;
let tlsServer: https.Server | undefined;
let tlsBase = '';
let certFile = '';
let dir = '';

beforeAll(async () => {
  origin = await start('127.0.0.1');
  second = await start('127.0.0.2');
  dir = tmpDir('redirect-policy-');
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
    ].concat([
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]),
    { stdio: 'ignore' },
  );
  const hits: string[] = [];
  tlsServer = https.createServer(
    { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) },
    (req, res) => handle(req, res, hits),
  );
  await new Promise<void>((r) => tlsServer!.listen(0, '127.0.0.1', r));
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const s of [origin.server, second.server, tlsServer]) {
    s?.closeAllConnections();
    await new Promise((r) => (s ? s.close(r) : r(undefined)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  await closeHttpConnections();
});

const via = (target: string) => `${origin.base}/to?u=${encodeURIComponent(target)}`;

async function showAndOpen(
  href: string,
  opts: SourceOptions,
): Promise<{ show: Awaited<ReturnType<typeof caught>>; open: Awaited<ReturnType<typeof caught>> }> {
  const source = await resolveSource(href, opts);
  const show = await caught(source.show());
  const open = await caught(source.open().then((b) => readAll(b.stream)));
  return { show, open };
}

describe('redirect policy', () => {
  it('refuses a redirect to a link-local address (a metadata service), HEAD and GET, not retried', async () => {
    const started = Date.now();
    const { show, open } = await showAndOpen(via('http://169.254.169.254/latest/meta-data/'), {});
    for (const err of [show, open]) {
      expect(err).toBeInstanceOf(RedirectRefused);
      expect(err.code).toBe('REDIRECT_REFUSED');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/169\.254\.169\.254.*link-local or blocked/);
    }
    // refused before any connection attempt (no connect timeout waited for)
    expect(Date.now() - started).toBeLessThan(2000);
    const v6 = await showAndOpen(via('http://[fe80::1]/x'), {});
    expect(v6.show).toBeInstanceOf(RedirectRefused);
    expect(v6.open).toBeInstanceOf(RedirectRefused);
  });

  it('refuses http.blockedNetworks; nothing is sent there; the same redirect works without the block', async () => {
    const target = `${second.base}/latest/meta-data/`;
    const { show, open } = await showAndOpen(via(target), { http: { blockedNetworks: ['127.0.0.2/32'] } });
    expect(show).toBeInstanceOf(RedirectRefused);
    expect(open).toBeInstanceOf(RedirectRefused);
    expect(second.hits).toEqual([]);

    const allowed = await resolveSource(via(target), {});
    expect((await allowed.show()).size).toBe(5);
    expect((await readAll((await allowed.open()).stream)).toString()).toBe('hello');
    expect(second.hits).toEqual(['HEAD /latest/meta-data/', 'GET /latest/meta-data/']);
  });

  it('checks the addresses a redirect target name resolves to', async () => {
    const port = new URL(origin.base).port;
    const { show, open } = await showAndOpen(via(`http://localhost:${port}/x`), {
      http: { blockedNetworks: ['127.0.0.0/8'] },
    });
    expect(show).toBeInstanceOf(RedirectRefused);
    expect(open).toBeInstanceOf(RedirectRefused);
    expect(show.message).toMatch(/resolves to 127\.0\.0\.1/);
    // the href itself is not subject to the policy: only where a server sends us
    const direct = await resolveSource(`${origin.base}/x`, { http: { blockedNetworks: ['127.0.0.0/8'] } });
    expect((await direct.show()).size).toBe(5);
  });

  it('refuses https → http unless http.allowHttpsToHttpRedirect', async () => {
    const href = `${tlsBase}/to?u=${encodeURIComponent(`${origin.base}/plain`)}`;
    const { show, open } = await showAndOpen(href, { http: { caFile: certFile } });
    for (const err of [show, open]) {
      expect(err).toBeInstanceOf(RedirectRefused);
      expect(err.message).toMatch(/https to plain http/);
    }
    expect(origin.hits.filter((h) => h.endsWith('/plain'))).toEqual([]);
    const source = await resolveSource(href, { http: { caFile: certFile, allowHttpsToHttpRedirect: true } });
    expect((await source.show()).size).toBe(5);
    expect((await readAll((await source.open()).stream)).toString()).toBe('hello');
  });
});
