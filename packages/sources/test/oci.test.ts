// A real OCI registry (Debian's docker-registry, distribution 2.8) on loopback, without auth; artifacts are pushed
// over its HTTP API (no docker).
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ImageAuthRequired,
  ImageDownloadFailed,
  ImageNotFound,
  InvalidHref,
  InvalidImage,
} from '@imagecache/errors';
import {
  closeHttpConnections,
  clearRegistryTokens,
  OCI_DISK_TYPES_FOR_CONVERSION,
  OciSource,
  parseOciHref,
  resolveSource,
  uuidv5Url,
} from '@imagecache/sources';
import { startImageServer, type ImageServer } from '@imagecache/testing';
import { caught, readAll } from './helpers';
import { OCI_INDEX, OCI_MANIFEST, startRegistry, type Registry } from './servers/servers';

let reg: Registry;
const disk = randomBytes(200_000);
const diskArm = randomBytes(150_000);
const diskRaw = randomBytes(120_000);
let single: { digest: string; layers: string[] };
let amd64: string;
let arm64: string;
let raw64: string;
const repo = 'images/disk';

const hex = (d: string) => d.replace(/^sha\d+:/, '');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function indexOf(entries: { digest: string; json: string; arch: string; diskType: string }[]): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: entries.map((e) => ({
      mediaType: OCI_MANIFEST,
      digest: e.digest,
      size: Buffer.byteLength(e.json),
      platform: { architecture: e.arch, os: 'linux' },
      annotations: { disktype: e.diskType },
    })),
  });
}

beforeAll(async () => {
  reg = await startRegistry('none');
  single = await reg.pushArtifact(repo, [{ data: disk, title: 'disk-amd64.qcow2' }], {
    tag: 'v1',
    diskType: 'qcow2',
  });
  const a = await reg.pushArtifact(repo, [{ data: disk, title: 'disk-amd64.qcow2' }], { diskType: 'qcow2' });
  const b = await reg.pushArtifact(repo, [{ data: diskArm, title: 'disk-arm64.qcow2' }], {
    diskType: 'qcow2',
  });
  const c = await reg.pushArtifact(repo, [{ data: diskRaw, title: 'disk-amd64.raw' }], { diskType: 'raw' });
  amd64 = a.digest;
  arm64 = b.digest;
  raw64 = c.digest;
  // Two architectures (x86_64 written the kernel's way), and for amd64 two disk types.
  await reg.putManifest(
    repo,
    'multi',
    indexOf([
      { ...a, arch: 'x86_64', diskType: 'qcow2' },
      { ...b, arch: 'arm64', diskType: 'qcow2' },
      { ...c, arch: 'amd64', diskType: 'raw' },
    ]),
    OCI_INDEX,
  );
}, 30_000);
afterAll(async () => {
  await closeHttpConnections();
  await reg?.stop();
});
beforeEach(() => clearRegistryTokens());

describe('oci:// references', () => {
  it.each([
    ['oci://reg.example/images/disk', /needs a digest .* or a tag/],
    ['oci://reg.example/images/disk@sha256:abc', /sha256 digest has 64 hex digits, not 3/],
    [`oci://reg.example/images/disk@sha512:${'a'.repeat(64)}`, /sha512 digest has 128 hex digits, not 64/],
    [`oci://reg.example/images/disk@md5:${'a'.repeat(32)}`, /unknown digest algorithm "md5"/],
    [`oci://reg.example/images/disk@sha256:${'A'.repeat(64)}`, /lower-case hex/],
    [`oci://reg.example/images/disk@${'a'.repeat(64)}`, /not a digest/],
    ['oci://reg.example/Images/disk:v1', /not a repository name/],
    ['oci://reg.example/images/disk:-bad', /not a valid tag/],
    ['oci://user:hunter2@reg.example/images/disk:v1', /credentials do not belong/],
    ['oci://reg.example/images/disk:v1?x=1', /no query/],
    ['oci:///images/disk:v1', /not a registry/],
    ['oci://reg.example', /expected oci:/],
  ])('refuses %p before any request', async (href, why) => {
    const err = await caught(resolveSource(href));
    expect(err).toBeInstanceOf(InvalidHref);
    expect(err.message).toMatch(why);
    expect(err.message).not.toContain('hunter2');
  });

  it("names masters as Ironic does: UUIDv5 (URL namespace) of the href (spec.md §1's example)", () => {
    expect(uuidv5Url('http://127.0.0.1:8080/ubuntu.qcow2')).toBe('555bb464-6289-5d7b-ab3a-88416e1c9188');
  });

  it('parses digests, tags, ports and nested repositories', () => {
    const d = 'a'.repeat(64);
    expect(parseOciHref(`oci://127.0.0.1:5000/a/b/c@sha256:${d}`)).toEqual({
      registry: '127.0.0.1:5000',
      hostname: '127.0.0.1',
      repository: 'a/b/c',
      digest: { algo: 'sha256', hex: d, text: `sha256:${d}` },
    });
    expect(parseOciHref('oci://[::1]:5000/x:latest')).toMatchObject({
      hostname: '::1',
      repository: 'x',
      tag: 'latest',
    });
    // A digest wins over a tag beside it (docker's rule).
    expect(parseOciHref(`oci://r/x:v1@sha512:${'b'.repeat(128)}`)).toMatchObject({
      digest: { algo: 'sha512' },
    });
    expect(parseOciHref(`oci://r/x:v1@sha512:${'b'.repeat(128)}`).tag).toBeUndefined();
  });
});

describe('OCI registry: by digest and by tag', () => {
  it('shows and streams the single layer of a manifest named by digest', async () => {
    const href = `oci://${reg.host}/${repo}@${single.digest}`;
    const s = await resolveSource(href);
    expect(s).toBeInstanceOf(OciSource);
    expect(s.kind).toBe('oci');
    expect(s.imageId).toBeUndefined(); // the master is UUIDv5 of the href
    const info = await s.show();
    expect(info).toEqual({
      size: disk.length,
      noCache: false,
      immutable: true,
      diskFormat: 'qcow2',
      validator: single.layers[0],
      fileName: 'disk-amd64.qcow2',
      checksum: { algo: 'sha256', value: sha256(disk) },
    });
    const body = await s.open();
    expect(body.totalSize).toBe(disk.length);
    expect((await readAll(body.stream)).equals(disk)).toBe(true);
  });

  it('resolves a tag to its digest: the master is named after the digest href', async () => {
    const s = await resolveSource(`oci://${reg.host}/${repo}:v1`);
    expect(s.imageId).toBe(uuidv5Url(`oci://${reg.host}/${repo}@${single.digest}`));
    expect((await s.show()).checksum).toEqual({ algo: 'sha256', value: sha256(disk) });
    expect((await readAll((await s.open()).stream)).equals(disk)).toBe(true);
  });

  it('resumes a blob at an offset with a Range request', async () => {
    const s = await resolveSource(`oci://${reg.host}/${repo}@${single.digest}`);
    const body = await s.open({ offset: 50_000 });
    expect(body.start).toBe(50_000);
    expect((await readAll(body.stream)).equals(disk.subarray(50_000))).toBe(true);
  });

  it('maps a missing tag, manifest and blob to ImageNotFound', async () => {
    const errTag = await caught(resolveSource(`oci://${reg.host}/${repo}:nope`));
    expect(errTag).toBeInstanceOf(ImageNotFound);
    const errRepo = await caught(
      resolveSource(`oci://${reg.host}/no/such@sha256:${'0'.repeat(64)}`).then((s) => s.show()),
    );
    expect(errRepo).toBeInstanceOf(ImageNotFound);

    const lonely = randomBytes(1000);
    const art = await reg.pushArtifact('images/gone', [{ data: lonely }]);
    const del = await fetch(`${reg.url}/v2/images/gone/blobs/${art.layers[0]}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const s = await resolveSource(`oci://${reg.host}/images/gone@${art.digest}`);
    await s.show();
    const errBlob = await caught(s.open());
    expect(errBlob).toBeInstanceOf(ImageNotFound);
    expect(errBlob.message).toMatch(/HTTP 404/);
  });

  it('refuses a manifest with two layers', async () => {
    const two = await reg.pushArtifact(repo, [{ data: randomBytes(100) }, { data: randomBytes(100) }]);
    const err = await caught((await resolveSource(`oci://${reg.host}/${repo}@${two.digest}`)).show());
    expect(err).toBeInstanceOf(InvalidImage);
    expect(err.message).toMatch(/has 2 layers; a disk image has exactly one/);
  });

  it('refuses a manifest without layers', async () => {
    const none = await reg.pushArtifact(repo, []);
    const err = await caught((await resolveSource(`oci://${reg.host}/${repo}@${none.digest}`)).show());
    expect(err).toBeInstanceOf(InvalidImage);
    expect(err.message).toMatch(/has 0 layers/);
  });
});

describe('OCI registry: an index', () => {
  const platform = (architecture: string) => ({ oci: { platform: { architecture, os: 'linux' } } });

  it('picks the manifest of the platform, raw first by default', async () => {
    const s = await resolveSource(`oci://${reg.host}/${repo}:multi`, platform('amd64'));
    expect(s.imageId).toBe(uuidv5Url(`oci://${reg.host}/${repo}@${raw64}`));
    const info = await s.show();
    expect(info).toMatchObject({ size: diskRaw.length, diskFormat: 'raw', fileName: 'disk-amd64.raw' });
    expect((await readAll((await s.open()).stream)).equals(diskRaw)).toBe(true);
  });

  it('prefers qcow2 when asked (a cache that converts), x86_64 ≡ amd64', async () => {
    const s = await resolveSource(`oci://${reg.host}/${repo}:multi`, {
      oci: { platform: { architecture: 'x86_64' }, diskTypes: OCI_DISK_TYPES_FOR_CONVERSION },
    });
    expect(s.imageId).toBe(uuidv5Url(`oci://${reg.host}/${repo}@${amd64}`));
    expect((await s.show()).checksum?.value).toBe(sha256(disk));
  });

  it('aarch64 ≡ arm64; an index named by its digest is resolved too', async () => {
    const idx = await fetch(`${reg.url}/v2/${repo}/manifests/multi`, {
      method: 'HEAD',
      headers: { accept: OCI_INDEX },
    });
    const indexDigest = idx.headers.get('docker-content-digest')!;
    const s = await resolveSource(`oci://${reg.host}/${repo}@${indexDigest}`, platform('aarch64'));
    expect(s.imageId).toBeUndefined();
    const info = await s.show();
    expect(info).toMatchObject({ size: diskArm.length, fileName: 'disk-arm64.qcow2' });
    expect(info.checksum?.value).toBe(sha256(diskArm));
    expect(hex(arm64)).toHaveLength(64);
  });

  it('refuses a platform the index does not have, naming those it has', async () => {
    const err = await caught(resolveSource(`oci://${reg.host}/${repo}:multi`, platform('s390x')));
    expect(err).toBeInstanceOf(ImageNotFound);
    expect(err.message).toMatch(
      /no manifest for linux\/s390x \(it has linux\/x86_64, linux\/arm64, linux\/amd64\)/,
    );
  });
});

describe('OCI registry: redirects and transient answers (through a proxy in front of the real registry)', () => {
  let storage: ImageServer;
  let proxy: http.Server;
  let proxyHost: string;
  const seen: { path: string; authorization?: string }[] = [];
  let fault: { status: number; headers?: Record<string, string> } | undefined;

  beforeAll(async () => {
    storage = await startImageServer();
    storage.route('/blob', { body: disk });
    proxy = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      if (fault) {
        res.writeHead(fault.status, fault.headers).end();
        return;
      }
      if (/\/blobs\/sha256:/.test(req.url ?? '')) {
        res.writeHead(307, { location: storage.url('/blob') }).end(); // blob storage elsewhere
        return;
      }
      const up = http.request(`${reg.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await storage.close();
    await new Promise((r) => proxy.close(r));
  });

  it('follows a redirect to blob storage without sending the credentials there', async () => {
    const s = await resolveSource(`oci://${proxyHost}/${repo}@${single.digest}`, {
      auth: { type: 'bearer', token: 'registry-secret-token' },
    });
    await s.show();
    expect((await readAll((await s.open()).stream)).equals(disk)).toBe(true);
    expect(seen.find((r) => r.path.includes('/blobs/'))?.authorization).toBe('Bearer registry-secret-token');
    const atStorage = storage.requests.filter((r) => r.path === '/blob');
    expect(atStorage).toHaveLength(1);
    expect(atStorage[0]!.headers.authorization).toBeUndefined();
  });

  it('maps 429 to a retryable failure that honours Retry-After, and 5xx to a retryable one', async () => {
    fault = { status: 429, headers: { 'retry-after': '7' } };
    try {
      const err = await caught(resolveSource(`oci://${proxyHost}/${repo}:v1`));
      expect(err).toBeInstanceOf(ImageDownloadFailed);
      expect(err.retryable).toBe(true);
      expect((err as ImageDownloadFailed).details.retryAfterMs).toBe(7000);
      fault = { status: 503 };
      const err5 = await caught(resolveSource(`oci://${proxyHost}/${repo}:v1`));
      expect(err5).toBeInstanceOf(ImageDownloadFailed);
      expect(err5.retryable).toBe(true);
      fault = { status: 401 }; // no challenge at all
      const err401 = await caught(resolveSource(`oci://${proxyHost}/${repo}:v1`));
      expect(err401).toBeInstanceOf(ImageAuthRequired);
      fault = { status: 403 };
      expect(await caught(resolveSource(`oci://${proxyHost}/${repo}:v1`))).toBeInstanceOf(ImageNotFound);
    } finally {
      fault = undefined;
    }
  });
});
