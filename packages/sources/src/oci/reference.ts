import { invalidHref } from '../href';

export type DigestAlgo = 'sha256' | 'sha512';

export interface Digest {
  algo: DigestAlgo;
  /** Lower-case hex. */
  hex: string;
  /** `algo:hex`, as registries name content. */
  text: string;
}

/** An `oci://` href, parsed. */
export interface OciReference {
  /** `HOST[:PORT]` exactly as written (the key of a registry's settings). */
  registry: string;
  /** The host name or address alone (IPv6 without brackets). */
  hostname: string;
  /** `a/b/c`: the repository path in the registry. */
  repository: string;
  tag?: string;
  /** Given: the reference is immutable (a tag beside it is ignored, as docker does). */
  digest?: Digest;
}

const HEX_LENGTH: Record<DigestAlgo, number> = { sha256: 64, sha512: 128 };
/** One repository path component (OCI distribution spec). */
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const HOSTNAME =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * Parses `oci://HOST[:PORT]/REPO@ALGO:HEX` or `oci://HOST[:PORT]/REPO:TAG`. Refuses (InvalidHref), before any
 * request: credentials in the href, a query or fragment, a repository or tag of the wrong form, no digest and
 * no tag, a digest of an unknown algorithm (sha256 and sha512 are known) or of the wrong length or alphabet.
 */
export function parseOciHref(href: string): OciReference {
  const m = /^oci:\/\/([^/]*)\/(.*)$/i.exec(href);
  if (!m)
    throw invalidHref(
      href,
      'expected oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST or oci://HOST/REPOSITORY:TAG',
    );
  const authority = m[1] ?? '';
  let rest = m[2] ?? '';
  if (authority.includes('@')) {
    throw invalidHref(
      href,
      'credentials do not belong in an oci:// href (configure the registry, or pass auth)',
    );
  }
  if (/[?#]/.test(rest)) throw invalidHref(href, 'an oci:// href has no query or fragment');
  const hm = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority);
  const host = hm?.[1] ?? '';
  const port = hm?.[2];
  const hostname = host.startsWith('[') ? host.slice(1, -1) : host;
  if (
    !hm ||
    (!host.startsWith('[') && !HOSTNAME.test(host)) ||
    (port !== undefined && Number(port) > 65535)
  ) {
    throw invalidHref(href, `"${authority}" is not a registry HOST[:PORT]`);
  }

  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseDigest(href, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalidHref(href, `"${tag}" is not a valid tag`);
  }
  const repository = rest;
  if (repository === '' || !repository.split('/').every((c) => COMPONENT.test(c))) {
    throw invalidHref(
      href,
      `"${repository}" is not a repository name (lower-case components of letters, digits, ".", "_", "-", separated by "/")`,
    );
  }
  if (!digest && tag === undefined) {
    throw invalidHref(href, 'an oci:// href needs a digest (@sha256:...) or a tag (:TAG)');
  }
  return {
    registry: authority,
    hostname,
    repository,
    ...(tag !== undefined && !digest ? { tag } : {}),
    ...(digest ? { digest } : {}),
  };
}

/** `sha256:HEX` / `sha512:HEX` as found in an href or a manifest; throws InvalidHref naming `href`. */
export function parseDigest(href: string, text: string): Digest {
  const i = text.indexOf(':');
  if (i < 0) throw invalidHref(href, `"${text}" is not a digest (ALGORITHM:HEX)`);
  const algo = text.slice(0, i);
  const hex = text.slice(i + 1);
  if (algo !== 'sha256' && algo !== 'sha512') {
    throw invalidHref(href, `unknown digest algorithm "${algo}" (sha256 or sha512)`);
  }
  if (hex.length !== HEX_LENGTH[algo]) {
    throw invalidHref(href, `a ${algo} digest has ${HEX_LENGTH[algo]} hex digits, not ${hex.length}`);
  }
  if (!/^[0-9a-f]+$/.test(hex)) throw invalidHref(href, 'a digest is lower-case hex');
  return { algo, hex, text: `${algo}:${hex}` };
}

/** The href naming the same repository by `digest`. */
export function digestHref(ref: OciReference, digest: Digest): string {
  return `oci://${ref.registry}/${ref.repository}@${digest.text}`;
}

/** Loopback hosts, talked to in plain http unless configured otherwise (as docker treats them as insecure). */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '::1' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}
