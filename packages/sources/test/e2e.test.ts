// End to end through the engine (@imagecache/core) and the CLI (./bin/imagecache, built): image-service ids
// against a real Glance, oci:// against real docker-registry servers (anonymous, and HTTP Basic).
// The engine is reached through the workspace mapping (jest, tsc), not as a dependency: core depends on sources.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageCache, type Logger } from '@imagecache/core';
import {
  ImageAuthRequired,
  ImageChecksumError,
  ImageFormatMismatch,
  type ImageCacheError,
} from '@imagecache/errors';
import { closeHttpConnections, uuidv5Url, type SourceOptions } from '@imagecache/sources';
import { tmpDir } from '@imagecache/testing';
import { caught } from './helpers';
import { startGlance, startRegistry, startTogether, type Glance, type Registry } from './servers/servers';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(REPO_ROOT, 'bin/imagecache');

let glance: Glance;
let reg: Registry;
let secureReg: Registry;
let root: string;
let qcow2: Buffer;
let qcowId: string;
let digest: string;
const repo = 'images/disk';
const sha = (algo: string, b: Buffer) => createHash(algo).update(b).digest('hex');

/** A logger that keeps every line, to grep for secrets. */
function captureLogger(): Logger & { text(): string } {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) =>
    lines.push(
      JSON.stringify({ level, msg, ...obj }, (_k, v) =>
        v instanceof Error ? { ...v, message: v.message } : v,
      ),
    );
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    text: () => lines.join('\n'),
  };
}

let n = 0;
function newCache(sources: SourceOptions, opts: { forceRaw?: boolean; logger?: Logger } = {}) {
  const dir = path.join(root, `c${++n}`);
  fs.mkdirSync(path.join(dir, 'dest'), { recursive: true });
  const cache = new ImageCache({
    masterDir: path.join(dir, 'master'),
    forceRaw: opts.forceRaw ?? false,
    retryDelayMs: 10,
    sources,
    logger: opts.logger,
  });
  const masters = () =>
    fs.existsSync(cache.masterDir)
      ? fs
          .readdirSync(cache.masterDir)
          .filter((f) => !f.startsWith('.'))
          .sort()
      : [];
  return { cache, dest: (name: string) => path.join(dir, 'dest', name), masters };
}

beforeAll(async () => {
  root = tmpDir('imagecache-e2e-');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(root, 'disk.qcow2'), '16M']);
  qcow2 = fs.readFileSync(path.join(root, 'disk.qcow2'));
  [glance, reg, secureReg] = await startTogether<[Glance, Registry, Registry]>(
    startGlance('noauth'),
    startRegistry('none'),
    startRegistry('htpasswd'),
  );
  qcowId = await glance.createImage(qcow2, { name: 'disk', disk_format: 'qcow2' });
  digest = (
    await reg.pushArtifact(repo, [{ data: qcow2, title: 'disk.qcow2' }], { tag: 'v1', diskType: 'qcow2' })
  ).digest;
}, 60_000);
afterAll(async () => {
  await closeHttpConnections();
  await Promise.all([glance?.stop(), reg?.stop(), secureReg?.stop()]);
  fs.rmSync(root, { recursive: true, force: true });
});

describe('engine: image-service ids', () => {
  it('misses, then hits; the master is named by the id', async () => {
    const { cache, dest, masters } = newCache({ imageService: { endpoint: glance.url } });
    const miss = await cache.fetchImage(qcowId, dest('a'));
    expect(miss).toMatchObject({
      cacheHit: false,
      masterPath: path.join(cache.masterDir, qcowId),
      format: 'qcow2',
      size: qcow2.length,
      checksum: { algo: 'sha512', value: sha('sha512', qcow2) },
      bytesDownloaded: qcow2.length,
    });
    expect(fs.readFileSync(dest('a')).equals(qcow2)).toBe(true);
    const hit = await cache.fetchImage(`glance://${qcowId}`, dest('b'));
    expect(hit).toMatchObject({
      cacheHit: true,
      bytesDownloaded: 0,
      masterPath: miss.masterPath,
      format: 'qcow2',
    });
    expect(fs.statSync(dest('b')).ino).toBe(fs.statSync(miss.masterPath!).ino);
    expect(masters()).toEqual([qcowId]);
  });

  it('names the converted master <id>.converted', async () => {
    const { cache, dest, masters } = newCache({ imageService: { endpoint: glance.url } }, { forceRaw: true });
    const r = await cache.fetchImage(qcowId, dest('a'));
    expect(r).toMatchObject({ cacheHit: false, converted: true, format: 'raw', size: 16 << 20 });
    expect(masters()).toEqual([`${qcowId}.converted`]);
  });

  it("uses Glance's disk_format as the expected format: a qcow2 labelled raw is refused", async () => {
    const liar = await glance.createImage(qcow2, { disk_format: 'raw' });
    const { cache, dest, masters } = newCache({ imageService: { endpoint: glance.url } });
    const err = await caught(cache.fetchImage(liar, dest('a')));
    expect(err).toBeInstanceOf(ImageFormatMismatch);
    expect(masters()).toEqual([]);
  });

  it('verifies the bytes against os_hash_value while streaming: a wrong one is refused, nothing published', async () => {
    const other = await glance.createImage(qcow2, { disk_format: 'qcow2' });
    await glance.sql('UPDATE images SET os_hash_value=? WHERE id=?', ['0'.repeat(128), other]);
    const { cache, dest, masters } = newCache({ imageService: { endpoint: glance.url } });
    const err = await caught(cache.fetchImage(other, dest('a')));
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(masters()).toEqual([]);
    expect(fs.existsSync(dest('a'))).toBe(false);
  });
});

describe('engine: oci://', () => {
  it('by digest: misses, then hits; by tag: the same master (named after the digest href)', async () => {
    const { cache, dest, masters } = newCache({});
    const href = `oci://${reg.host}/${repo}@${digest}`;
    const miss = await cache.fetchImage(href, dest('a'));
    expect(miss).toMatchObject({
      cacheHit: false,
      masterPath: path.join(cache.masterDir, uuidv5Url(href)),
      format: 'qcow2',
      checksum: { algo: 'sha256', value: sha('sha256', qcow2) },
    });
    const hit = await cache.fetchImage(href, dest('b'));
    expect(hit).toMatchObject({ cacheHit: true, bytesDownloaded: 0 });
    const byTag = await cache.fetchImage(`oci://${reg.host}/${repo}:v1`, dest('c'));
    expect(byTag).toMatchObject({ cacheHit: true, masterPath: miss.masterPath });
    expect(masters()).toEqual([uuidv5Url(href)]);
  });

  it('refuses a blob whose bytes do not match its digest; nothing is published', async () => {
    const data = Buffer.concat([qcow2]);
    data[data.length - 1] = 0x5a;
    const art = await reg.pushArtifact('images/tampered', [{ data }]);
    const file = reg.blobFile(art.layers[0]!);
    const stored = fs.readFileSync(file);
    stored[100] = stored[100]! ^ 0xff; // flipped on the registry's disk: served with its original digest
    fs.writeFileSync(file, stored);
    const { cache, dest, masters } = newCache({});
    const err = await caught(cache.fetchImage(`oci://${reg.host}/images/tampered@${art.digest}`, dest('a')));
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(masters()).toEqual([]);
    expect(fs.existsSync(dest('a'))).toBe(false);
    expect(fs.readdirSync(cache.folder.workDir)).toEqual([]);
  });

  it('decompresses a zstd layer after verifying its digest', async () => {
    const zst = execFileSync('zstd', ['-q', '-c', path.join(root, 'disk.qcow2')]);
    const art = await reg.pushArtifact('images/zstd', [
      { data: zst, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', title: 'disk.qcow2.zst' },
    ]);
    const { cache, dest } = newCache({});
    const r = await cache.fetchImage(`oci://${reg.host}/images/zstd@${art.digest}`, dest('a'));
    expect(r).toMatchObject({
      format: 'qcow2',
      size: qcow2.length,
      checksum: { algo: 'sha256', value: sha('sha256', zst) },
    });
    expect(fs.readFileSync(dest('a')).equals(qcow2)).toBe(true);
  });

  it('carries per-request credentials that never reach logs, results or errors', async () => {
    const art = await secureReg.pushArtifact('private/disk', [{ data: qcow2 }]);
    const href = `oci://${secureReg.host}/private/disk@${art.digest}`;
    const logger = captureLogger();
    const { cache, dest } = newCache({}, { logger });
    const auth = { type: 'basic' as const, username: secureReg.user, password: secureReg.password };
    const r = await cache.fetchImage(href, dest('a'), { auth });
    expect(r.cacheHit).toBe(false);
    const wrong = 'Wrong-Registry-Password-77';
    const err = (await caught(
      newCache({}, { logger }).cache.fetchImage(href, dest('b'), { auth: { ...auth, password: wrong } }),
    )) as ImageCacheError;
    expect(err).toBeInstanceOf(ImageAuthRequired);
    const everything = `${logger.text()}\n${JSON.stringify(r)}\n${err.message}\n${JSON.stringify(err.toJSON())}`;
    for (const secret of [
      secureReg.password,
      wrong,
      Buffer.from(`${secureReg.user}:${secureReg.password}`).toString('base64'),
    ]) {
      expect(everything).not.toContain(secret);
    }
    expect(logger.text()).toContain('fetched image');
  });
});

describe('CLI', () => {
  function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      if (!fs.existsSync(path.join(REPO_ROOT, 'apps/cli/dist/main.js'))) {
        reject(new Error('the CLI is not built: run `pnpm build` (scripts/setup.sh does)'));
        return;
      }
      const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('imagecache fetch <uuid> and oci://…@sha256 with a configuration file', async () => {
    const dir = path.join(root, 'cli');
    fs.mkdirSync(path.join(dir, 'dest'), { recursive: true });
    const art = await secureReg.pushArtifact('cli/disk', [{ data: qcow2 }]);
    const config = path.join(dir, 'host.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        caches: [{ name: 'instance', masterDir: path.join(dir, 'master'), forceRaw: false }],
        imageService: { endpoint: glance.url },
        oci: {
          registries: [
            {
              host: secureReg.host,
              auth: { type: 'basic', username: secureReg.user, password: secureReg.password },
            },
          ],
        },
      }),
    );
    const common = ['--config', config, '--json', '--log-level', 'debug'];
    const miss = await cli(['fetch', qcowId, path.join(dir, 'dest/a'), ...common]);
    expect(miss.code).toBe(0);
    expect(JSON.parse(miss.stdout)).toMatchObject({
      cacheHit: false,
      masterPath: path.join(dir, 'master', qcowId),
    });
    const hit = await cli(['fetch', qcowId, path.join(dir, 'dest/b'), ...common]);
    expect(JSON.parse(hit.stdout)).toMatchObject({ cacheHit: true, bytesDownloaded: 0 });

    const href = `oci://${secureReg.host}/cli/disk@${art.digest}`;
    const oci = await cli(['fetch', href, path.join(dir, 'dest/c'), ...common]);
    expect(oci.code).toBe(0);
    expect(JSON.parse(oci.stdout)).toMatchObject({
      cacheHit: false,
      masterPath: path.join(dir, 'master', uuidv5Url(href)),
    });
    for (const r of [miss, hit, oci]) expect(r.stdout + r.stderr).not.toContain(secureReg.password);

    // The image service from the environment, in the --master-dir mode; an unknown id exits 20.
    const env = { IMAGECACHE_IMAGE_SERVICE_ENDPOINT: glance.url };
    const md = await cli(
      [
        'fetch',
        qcowId,
        path.join(dir, 'dest/d'),
        '--master-dir',
        path.join(dir, 'm2'),
        '--no-force-raw',
        '--json',
      ],
      env,
    );
    expect(JSON.parse(md.stdout)).toMatchObject({
      cacheHit: false,
      masterPath: path.join(dir, 'm2', qcowId),
    });
    const gone = await cli(
      [
        'fetch',
        '00000000-0000-4000-8000-000000000000',
        path.join(dir, 'dest/e'),
        '--master-dir',
        path.join(dir, 'm2'),
        '--json',
      ],
      env,
    );
    expect(gone.code).toBe(20);
    expect(JSON.parse(gone.stdout).error.code).toBe('IMAGE_NOT_FOUND');
  });
});
