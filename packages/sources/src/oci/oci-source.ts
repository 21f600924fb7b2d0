import { createHash } from 'node:crypto';
import * as os from 'node:os';
import { ImageChecksumError, ImageDownloadFailed, ImageNotFound, InvalidImage } from '@imagecache/errors';
import { safeHrefOf } from '../href';
import { isOk, jsonOf, labelOf, requestFollowing } from '../http/client';
import { dispatchersFor, type Dispatchers } from '../http/dispatchers';
import { rangedGet } from '../http/ranged-get';
import { contentLength, contextFor, header, type HttpResponse, type RequestContext } from '../http/request';
import { statusError } from '../http/status';
import {
  DEFAULT_OCI_DISK_TYPES,
  originOf,
  resolveHttpOptions,
  type OciRegistryOptions,
  type ResolvedHttpOptions,
  type SourceOptions,
} from '../options';
import type { ImageBody, ImageInfo, ImageSource, OpenOptions } from '../types';
import { uuidv5Url } from '../uuid5';
import {
  digestHref,
  isLoopback,
  parseDigest,
  parseOciHref,
  type Digest,
  type OciReference,
} from './reference';
import { registryCredentials, RegistryAuth } from './registry-auth';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Registries answer OCI media types only to a client that accepts them (distribution 2.8 gives 404 otherwise). */
const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');
const MAX_MANIFEST = 4 << 20;

/** Architecture names as OCI platforms write them, with the kernel's aliases. */
const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  amd64: 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  arm64: 'arm64',
  i386: '386',
  i686: '386',
  ia32: '386',
  '386': '386',
  ppc64: 'ppc64le',
};

export function normalizeArch(arch: string): string {
  const a = arch.toLowerCase();
  return ARCH_ALIASES[a] ?? a;
}

/** This host's platform in OCI terms. */
export function hostPlatform(): { architecture: string; os: string } {
  return { architecture: normalizeArch(os.arch()), os: 'linux' };
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
}

interface Manifest {
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

interface Resolved {
  /** The digest of the (platform) manifest: what the master is named by for a tag. */
  manifestDigest: Digest;
  layer: { digest: Digest; size?: number; mediaType?: string; title?: string };
  diskType?: string;
}

/**
 * A disk image in an OCI registry: `oci://HOST[:PORT]/REPO@sha256:…` (or sha512), or `oci://HOST/REPO:TAG`
 * resolved to a digest first. An image index is resolved by platform and by a `disktype` annotation
 * preference; the manifest must have exactly one layer, whose blob is the image; its digest is the checksum the
 * engine verifies while streaming. A tag is resolved when the source is created, and the master named after the
 * digest it resolved to, so that tag and digest share one (immutable, so fresh when present) master.
 */
export class OciSource implements ImageSource {
  readonly kind = 'oci' as const;
  readonly href: string;
  readonly safeHref: string;
  /** Set for a tag: UUIDv5 of the digest href it resolved to. Undefined for a digest href (UUIDv5 of the href). */
  imageId?: string;
  readonly ref: OciReference;
  private readonly base: string;
  private readonly http: ResolvedHttpOptions;
  private readonly dispatchers: Dispatchers;
  private readonly ctx: RequestContext;
  private readonly auth: RegistryAuth;
  private readonly platform: { architecture: string; os: string };
  private readonly diskTypes: readonly string[];
  private resolved?: Resolved;
  private info?: ImageInfo;

  /** Parses and checks the href (InvalidHref) without any request; `resolve` also resolves a tag. */
  constructor(href: string, options: SourceOptions = {}) {
    this.ref = parseOciHref(href);
    this.href = href;
    this.safeHref = safeHrefOf(href);
    const registry: OciRegistryOptions | undefined = options.oci?.registries?.find(
      (r) => r.host.toLowerCase() === this.ref.registry.toLowerCase(),
    );
    const plain = registry?.plainHttp ?? isLoopback(this.ref.hostname);
    this.base = `${plain ? 'http' : 'https'}://${this.ref.registry}`;
    this.http = resolveHttpOptions({
      ...options.http,
      caFile: registry?.caFile ?? options.http?.caFile,
      verifyTls: registry?.verifyTls ?? options.http?.verifyTls,
    });
    this.dispatchers = dispatchersFor(this.http);
    this.ctx = contextFor(this.safeHref, this.http);
    this.auth = new RegistryAuth(
      this.ref,
      registryCredentials(this.ref, options),
      this.dispatchers,
      this.ctx,
      new URL(this.base),
      new Set((options.oci?.allowedTokenRealms ?? []).map(originOf)),
    );
    const p = options.oci?.platform;
    const host = hostPlatform();
    this.platform = {
      architecture: normalizeArch(p?.architecture ?? host.architecture),
      os: (p?.os ?? host.os).toLowerCase(),
    };
    this.diskTypes = (options.oci?.diskTypes ?? DEFAULT_OCI_DISK_TYPES).map((t) => t.toLowerCase());
  }

  /** A source for `href`; a tag is resolved to its digest now (one or two manifest requests). */
  static async resolve(href: string, options: SourceOptions = {}, signal?: AbortSignal): Promise<OciSource> {
    const source = new OciSource(href, options);
    if (!source.ref.digest) {
      const resolved = await source.resolveManifest(signal);
      source.imageId = uuidv5Url(digestHref(source.ref, resolved.manifestDigest));
    }
    return source;
  }

  async show(opts: { signal?: AbortSignal } = {}): Promise<ImageInfo> {
    const r = await this.resolveManifest(opts.signal);
    const diskFormat = r.diskType === 'raw' || r.diskType === 'qcow2' ? r.diskType : undefined;
    this.info = {
      size: r.layer.size,
      noCache: false,
      immutable: true,
      diskFormat,
      validator: r.layer.digest.text,
      fileName: r.layer.title ?? r.layer.digest.hex,
      checksum: { algo: r.layer.digest.algo, value: r.layer.digest.hex },
    };
    return this.info;
  }

  async open(opts: OpenOptions = {}): Promise<ImageBody> {
    const info = this.info ?? (await this.show({ signal: opts.signal }));
    const layer = this.resolved!.layer;
    const offset = opts.offset ?? 0;
    // Content-addressed: a plain Range (no If-Range) resumes safely. Redirects (blob storage) are followed,
    // credentials kept for the registry's own origin only.
    const { res, resumed } = await rangedGet(
      (headers) =>
        this.call(`blobs/${layer.digest.text}`, {
          accept: '*/*',
          stream: true,
          signal: opts.signal,
          headers,
        }),
      offset,
    );
    const body = res.body;
    if (resumed && body) return { stream: body, start: resumed.start, totalSize: resumed.totalSize, info };
    if (res.status === 200 && body) {
      return { stream: body, start: 0, totalSize: contentLength(res.headers) ?? info.size, info };
    }
    body?.destroy();
    if (isOk(res.status)) {
      throw new ImageDownloadFailed(`GET ${labelOf(res.url)}: unexpected HTTP ${res.status} for a blob`, {
        href: this.safeHref,
        status: res.status,
        retryable: false,
      });
    }
    throw statusError('GET', labelOf(res.url), res, this.safeHref);
  }

  /** The manifest (through an index when there is one) and its single layer, fetched once. */
  private async resolveManifest(signal?: AbortSignal): Promise<Resolved> {
    if (this.resolved) return this.resolved;
    const top = await this.fetchManifest(this.ref.digest?.text ?? this.ref.tag!, this.ref.digest, signal);
    let manifest = top.manifest;
    let digest = top.digest;
    let diskType: string | undefined;
    if (isIndex(manifest, top.contentType)) {
      const chosen = this.choose(manifest.manifests ?? []);
      const d = this.contentDigest(chosen.digest, 'an index entry');
      const next = await this.fetchManifest(d.text, d, signal);
      if (isIndex(next.manifest, next.contentType)) {
        throw new InvalidImage(
          `${this.safeHref}: the index entry ${d.text} is an index itself, not a manifest`,
          {
            href: this.safeHref,
          },
        );
      }
      manifest = next.manifest;
      digest = d;
      diskType = chosen.annotations?.disktype;
    }
    const layers = Array.isArray(manifest.layers) ? manifest.layers : undefined;
    if (!layers) {
      throw new InvalidImage(
        `${this.safeHref}: manifest ${digest.text} is neither an image manifest nor an index`,
        {
          href: this.safeHref,
        },
      );
    }
    if (layers.length !== 1) {
      throw new InvalidImage(
        `${this.safeHref}: manifest ${digest.text} has ${layers.length} layers; a disk image has exactly one`,
        { href: this.safeHref, layers: layers.length },
      );
    }
    const layer = layers[0]!;
    this.resolved = {
      manifestDigest: digest,
      layer: {
        digest: this.contentDigest(layer.digest, 'the layer'),
        size: typeof layer.size === 'number' && layer.size >= 0 ? layer.size : undefined,
        mediaType: layer.mediaType,
        title: safeTitle(layer.annotations?.['org.opencontainers.image.title']),
      },
      diskType: (diskType ?? manifest.annotations?.disktype)?.toLowerCase(),
    };
    return this.resolved;
  }

  /** The manifest `reference` names; checked against `expected` (a digest reference) byte for byte. */
  private async fetchManifest(
    reference: string,
    expected: Digest | undefined,
    signal?: AbortSignal,
  ): Promise<{ manifest: Manifest; digest: Digest; contentType?: string }> {
    const res = await this.call(`manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      collect: MAX_MANIFEST,
      signal,
    });
    const what = `GET ${labelOf(res.url)}`;
    if (!isOk(res.status)) throw statusError('GET', labelOf(res.url), res, this.safeHref);
    const bytes = res.data ?? Buffer.alloc(0);
    const algo = expected?.algo ?? 'sha256';
    const hex = createHash(algo).update(bytes).digest('hex');
    if (expected && hex !== expected.hex) {
      throw new ImageChecksumError(`${what}: the manifest's bytes don't match its digest ${expected.text}`, {
        href: this.safeHref,
        expected: expected.text,
        actual: `${algo}:${hex}`,
      });
    }
    const manifest = jsonOf(res, what, this.safeHref) as Manifest;
    if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
      throw new InvalidImage(`${what}: the manifest is not a JSON object`, { href: this.safeHref });
    }
    const contentType = header(res.headers, 'content-type')?.split(';')[0]?.trim();
    return { manifest, digest: expected ?? { algo, hex, text: `${algo}:${hex}` }, contentType };
  }

  /** The index entry for this platform, by disktype preference (Ironic's identify_specific_image). */
  private choose(entries: Descriptor[]): Descriptor {
    const manifests = entries.filter(
      (e) => typeof e === 'object' && e !== null && (e.mediaType === undefined || !isIndexType(e.mediaType)),
    );
    const { architecture, os: wantOs } = this.platform;
    const osOk = (e: Descriptor) => !e.platform?.os || e.platform.os.toLowerCase() === wantOs;
    const exact = manifests.filter(
      (e) => e.platform?.architecture && normalizeArch(e.platform.architecture) === architecture && osOk(e),
    );
    const candidates =
      exact.length > 0 ? exact : manifests.filter((e) => !e.platform?.architecture && osOk(e));
    if (candidates.length === 0) {
      const offered = [
        ...new Set(manifests.map((e) => `${e.platform?.os ?? '?'}/${e.platform?.architecture ?? '?'}`)),
      ].join(', ');
      throw new ImageNotFound(
        `${this.safeHref}: the index has no manifest for ${wantOs}/${architecture} (it has ${offered || 'none'})`,
        { href: this.safeHref, platform: `${wantOs}/${architecture}` },
      );
    }
    const rank = (e: Descriptor) => {
      const i = this.diskTypes.indexOf((e.annotations?.disktype ?? '').toLowerCase());
      return i < 0 ? this.diskTypes.length : i;
    };
    return [...candidates].sort((a, b) => rank(a) - rank(b))[0]!;
  }

  private contentDigest(text: unknown, what: string): Digest {
    try {
      return parseDigest(this.href, typeof text === 'string' ? text : '');
    } catch {
      throw new InvalidImage(`${this.safeHref}: ${what} has no valid digest (sha256 or sha512)`, {
        href: this.safeHref,
      });
    }
  }

  /** One request to the registry's `/v2/REPO/…`, authenticated (challenges answered, at most twice). */
  private async call(
    path: string,
    o: {
      accept: string;
      stream?: boolean;
      collect?: number;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    },
  ): Promise<HttpResponse> {
    const url = new URL(`${this.base}/v2/${this.ref.repository}/${path}`);
    let authorization = this.auth.initial();
    for (let attempt = 1; ; attempt++) {
      const res = await requestFollowing({
        dispatchers: this.dispatchers,
        ctx: this.ctx,
        url,
        method: 'GET',
        headers: { accept: o.accept, ...o.headers },
        credentials: authorization ? { authorization } : undefined,
        signal: o.signal,
        stream: o.stream,
        collect: o.collect,
        maxRedirects: this.http.maxRedirects,
      });
      if (res.status !== 401 || attempt > 2) return res;
      res.body?.destroy();
      authorization = await this.auth.answer(res, o.signal);
    }
  }
}

function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_LIST;
}

function isIndex(m: Manifest, contentType: string | undefined): boolean {
  if (m.mediaType !== undefined) return isIndexType(m.mediaType);
  if (contentType !== undefined && isIndexType(contentType)) return true;
  return Array.isArray(m.manifests) && !Array.isArray(m.layers);
}

/** A layer title usable as a file name (checksum files): no path, no control characters. */
function safeTitle(title: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (!title || /[/\\\u0000-\u001f]/.test(title) || title === '.' || title === '..') return undefined;
  return title;
}
