// Real servers from Debian for the integration tests: Glance (python3-glance), Keystone (python3-keystone) and a
// distribution registry (docker-registry), started on loopback by the scripts beside this file (copies of the
// verified recipes in ../shared/recipes). A server that can't start makes the test fail with the reason.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir } from '@imagecache/testing';

const DIR = __dirname;
const DEBIAN_HINT =
  'run scripts/setup.sh (Debian packages python3-glance python3-keystone docker-registry apache2-utils)';

function run(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [path.join(DIR, script), ...args],
      { env: { ...process.env, ...env }, timeout: 90_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${script} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(stdout.trim());
      },
    );
  });
}

/**
 * Kills the process whose PID is in `pidFile` (if any) with SIGKILL and waits until it is gone; only while its
 * command line still names `dir` (the server's own folder): a PID file outlives its process, and PIDs come round
 * again within minutes on a busy machine, where a stale one could be another suite's worker.
 */
async function killNow(pidFile: string, dir: string): Promise<void> {
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : NaN;
  if (!(pid > 0) || !commandNames(pid, dir)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return; // already gone
  }
  for (let i = 0; i < 100 && commandNames(pid, dir); i++) await new Promise((r) => setTimeout(r, 20));
}

function commandNames(pid: number, text: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
  } catch {
    return false;
  }
}

function need(file: string, what: string): void {
  if (!fs.existsSync(file)) throw new Error(`${what} is not installed (${file} missing): ${DEBIAN_HINT}`);
}

const handedOut = new Set<number>();

/** A free loopback port (and, with `pair`, the one after it free too), never the same twice in a process. */
export async function freePort(pair = false): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await listenOnce(0);
    if (handedOut.has(port) || (pair && handedOut.has(port + 1))) continue;
    if (
      !pair ||
      (await listenOnce(port + 1).then(
        () => true,
        () => false,
      ))
    ) {
      handedOut.add(port);
      if (pair) handedOut.add(port + 1);
      return port;
    }
  }
  throw new Error('no free port (pair) found');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * Starts several servers at once; if one fails, stops those that started (no process is left behind) and throws
 * the first failure.
 */
export async function startTogether<T extends { stop(): Promise<void> }[]>(
  ...starting: { [K in keyof T]: Promise<T[K]> }
): Promise<T> {
  const settled = await Promise.allSettled(starting);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as T;
}

// ---------------------------------------------------------------------------------------------------------------
// Glance

export interface Glance {
  url: string;
  dir: string;
  stop(): Promise<void>;
  /** Runs SQL on Glance's sqlite database (Glance reads it on every request). */
  sql(statement: string, params?: unknown[]): Promise<void>;
  /** Creates an image and uploads `data` (unless undefined: the image stays queued); returns its id. */
  createImage(
    data: Buffer | undefined,
    fields?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<string>;
  image(id: string, headers?: Record<string, string>): Promise<Record<string, unknown>>;
  /** The file of image `id` in the store. */
  storeFile(id: string): string;
}

export async function startGlance(
  mode: 'noauth' | 'keystone' = 'noauth',
  opts: { keystoneUrl?: string; policy?: string; port?: number } = {},
): Promise<Glance> {
  need('/usr/lib/python3/dist-packages/glance/cmd/api.py', 'Glance (python3-glance)');
  const port = opts.port ?? (await freePort());
  const dir = tmpDir('imagecache-glance-');
  const env: NodeJS.ProcessEnv = {};
  if (opts.keystoneUrl) env.KEYSTONE_URL = opts.keystoneUrl;
  if (opts.policy) env.GLANCE_POLICY = opts.policy;
  try {
    await run('glance.sh', ['start', String(port), dir, mode], env);
  } catch (err) {
    const log = path.join(dir, 'glance-api.log');
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : '';
    await run('glance.sh', ['stop', dir]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`Glance did not start: ${(err as Error).message}\n${tail}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const glance: Glance = {
    url,
    dir,
    async stop() {
      await run('glance.sh', ['stop', dir]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async sql(statement, params = []) {
      await new Promise<void>((resolve, reject) =>
        execFile(
          '/usr/bin/python3',
          [
            '-c',
            'import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2], json.loads(sys.argv[3])); c.commit()',
            path.join(dir, 'glance.sqlite'),
            statement,
            JSON.stringify(params),
          ],
          (err, _o, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
        ),
      );
    },
    async createImage(data, fields = {}, headers = {}) {
      const res = await fetch(`${url}/v2/images`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ name: 'test', disk_format: 'raw', container_format: 'bare', ...fields }),
      });
      if (res.status !== 201) throw new Error(`POST /v2/images: ${res.status} ${await res.text()}`);
      const id = ((await res.json()) as { id: string }).id;
      if (data) {
        const put = await fetch(`${url}/v2/images/${id}/file`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', ...headers },
          body: data,
        });
        if (put.status !== 204)
          throw new Error(`PUT /v2/images/${id}/file: ${put.status} ${await put.text()}`);
      }
      return id;
    },
    async image(id, headers = {}) {
      const res = await fetch(`${url}/v2/images/${id}`, { headers });
      return (await res.json()) as Record<string, unknown>;
    },
    storeFile: (id) => path.join(dir, 'images', id),
  };
  return glance;
}

// ---------------------------------------------------------------------------------------------------------------
// Keystone

export interface Keystone {
  url: string;
  dir: string;
  stop(): Promise<void>;
  /** A project-scoped token (X-Subject-Token). */
  token(user: string, password: string, project: string): Promise<string>;
  /** Calls Keystone's API with an admin token. */
  admin(
    method: string,
    pathname: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Response>;
}

/** `imageUrl`: an image service endpoint (public, RegionOne) in the catalog. */
export async function startKeystone(
  opts: { tokenExpiration?: number; imageUrl?: string; port?: number } = {},
): Promise<Keystone> {
  need('/usr/bin/keystone-wsgi-public', 'Keystone (python3-keystone)');
  const port = opts.port ?? (await freePort());
  const dir = tmpDir('imagecache-keystone-');
  const env: NodeJS.ProcessEnv = {};
  if (opts.tokenExpiration) env.KEYSTONE_TOKEN_EXPIRATION = String(opts.tokenExpiration);
  if (opts.imageUrl) env.KEYSTONE_IMAGE_URL = opts.imageUrl;
  try {
    await run('keystone.sh', ['start', String(port), dir], env);
  } catch (err) {
    const log = path.join(dir, 'keystone.log');
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : '';
    await run('keystone.sh', ['stop', dir]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`Keystone did not start: ${(err as Error).message}\n${tail}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const token = async (user: string, password: string, project: string) => {
    const res = await fetch(`${url}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: user, domain: { id: 'default' }, password } },
          },
          scope: { project: { name: project, domain: { id: 'default' } } },
        },
      }),
    });
    if (res.status !== 201) throw new Error(`Keystone token for ${user}: HTTP ${res.status}`);
    return res.headers.get('x-subject-token') ?? '';
  };
  return {
    url,
    dir,
    token,
    async stop() {
      await run('keystone.sh', ['stop', dir]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async admin(method, pathname, body, headers = {}) {
      const t = await token('admin', 'adminpw', 'admin');
      return fetch(`${url}${pathname}`, {
        method,
        headers: { 'x-auth-token': t, 'content-type': 'application/json', ...headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// OCI registry

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const EMPTY_CONFIG = Buffer.from('{}');

export interface Registry {
  /** `127.0.0.1:PORT`, as an oci:// href names it. */
  host: string;
  url: string;
  dir: string;
  user: string;
  password: string;
  stop(): Promise<void>;
  /** Pushes a blob (POST then PUT ?digest=); returns its digest. */
  pushBlob(repo: string, data: Buffer): Promise<string>;
  /** PUTs a manifest or index under `ref` (a tag or its digest); returns the digest the registry gives. */
  putManifest(repo: string, ref: string, json: string, mediaType: string): Promise<string>;
  /**
   * Pushes `layers` as one artifact: blobs, the empty config, a manifest tagged `tag` (if given). Returns the
   * manifest's digest, its bytes and the layer digests.
   */
  pushArtifact(
    repo: string,
    layers: { data: Buffer; mediaType?: string; title?: string }[],
    opts?: { tag?: string; diskType?: string },
  ): Promise<{ digest: string; json: string; layers: string[] }>;
  /** The file the registry stores a blob in (to tamper with). */
  blobFile(digest: string): string;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function startRegistry(auth: 'none' | 'htpasswd' | 'token' = 'none'): Promise<Registry> {
  need('/usr/bin/docker-registry', 'docker-registry');
  if (auth === 'htpasswd') need('/usr/bin/htpasswd', 'htpasswd (apache2-utils)');
  const port = await freePort(auth === 'token');
  const dir = tmpDir('imagecache-registry-');
  const user = 'tester';
  const password = 's3cret-registry-pw';
  try {
    await run('registry.sh', ['start', String(port), dir, auth, '0'], { REG_USER: user, REG_PASS: password });
  } catch (err) {
    const log = path.join(dir, 'registry.log');
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : '';
    await run('registry.sh', ['stop', dir]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`docker-registry did not start: ${(err as Error).message}\n${tail}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const basic = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const pushAuth = async (repo: string): Promise<Record<string, string>> => {
    if (auth === 'none') return {};
    if (auth === 'htpasswd') return { authorization: basic };
    const realm = `http://127.0.0.1:${port + 1}/token?service=test-registry&scope=repository:${repo}:pull,push`;
    const res = await fetch(realm, { headers: { authorization: basic } });
    const { token } = (await res.json()) as { token: string };
    return { authorization: `Bearer ${token}` };
  };
  const pushBlob = async (repo: string, data: Buffer) => {
    const h = await pushAuth(repo);
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: h });
    if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${await post.text()}`);
    const loc = new URL(post.headers.get('location') ?? '', url);
    const digest = sha256(data);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, {
      method: 'PUT',
      headers: { ...h, 'content-type': 'application/octet-stream' },
      body: data,
    });
    if (put.status !== 201) throw new Error(`PUT blob: ${put.status} ${await put.text()}`);
    return digest;
  };
  const putManifest = async (repo: string, ref: string, json: string, mediaType: string) => {
    const h = await pushAuth(repo);
    const put = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      headers: { ...h, 'content-type': mediaType },
      body: json,
    });
    if (put.status !== 201) throw new Error(`PUT manifest: ${put.status} ${await put.text()}`);
    return put.headers.get('docker-content-digest') ?? '';
  };
  return {
    host: `127.0.0.1:${port}`,
    url,
    dir,
    user,
    password,
    async stop() {
      // SIGKILL: on SIGTERM the registry takes ~1.7 s to drain; it keeps nothing worth a clean exit here.
      await Promise.all(['registry.pid', 'token.pid'].map((f) => killNow(path.join(dir, f), dir)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
    pushBlob,
    putManifest,
    async pushArtifact(repo, layers, opts = {}) {
      const config = await pushBlob(repo, EMPTY_CONFIG);
      const digests: string[] = [];
      for (const l of layers) digests.push(await pushBlob(repo, l.data));
      const json = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.disk-image',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
        layers: layers.map((l, i) => ({
          mediaType: l.mediaType ?? 'application/octet-stream',
          digest: digests[i],
          size: l.data.length,
          ...(l.title ? { annotations: { 'org.opencontainers.image.title': l.title } } : {}),
        })),
        ...(opts.diskType ? { annotations: { disktype: opts.diskType } } : {}),
      });
      const digest = await putManifest(repo, opts.tag ?? sha256(json), json, OCI_MANIFEST);
      return { digest, json, layers: digests };
    },
    blobFile(digest) {
      const hex = digest.replace(/^sha256:/, '');
      return path.join(dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    },
  };
}
