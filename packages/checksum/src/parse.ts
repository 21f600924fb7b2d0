import { ImageChecksumAlgorithmFailure } from '@imagecache/errors';
import { algoForLength, HEX_LENGTH, isHex, normalizeAlgo } from './algorithms';
import type { ChecksumAlgo, ExpectedChecksum } from './types';

/** What a request's checksum field means. */
export type ParsedChecksum =
  | { kind: 'value'; expected: ExpectedChecksum }
  | { kind: 'url'; url: string; algo?: ChecksumAlgo }
  | { kind: 'none' };

export interface ChecksumInput {
  /** `algo:value`, a bare hex value, or an http(s):// URL of a checksum file. */
  checksum?: string | null;
  /** The algorithm of a bare value (the request's `expectedChecksumAlgo`). */
  algo?: string | null;
}

export interface ChecksumPolicy {
  /** Accept md5 checksums (default true). */
  allowMd5?: boolean;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Interprets a checksum as given by a request (spec.md §4).
 *
 * - absent (undefined/null) → `{ kind: 'none' }`;
 * - `http(s)://…` → `{ kind: 'url' }` (the checksum file is fetched later; `algo`, if given, is validated
 *   and carried along); other URL schemes are refused;
 * - `algo:value` → the embedded algorithm wins, the `algo` argument is not consulted;
 * - a bare value → `algo` if given, else inferred from the length (32 md5, 64 sha256, 128 sha512).
 *
 * Hex is lower-cased. Everything unusable (empty, unknown algorithm, not hex, wrong length for the
 * algorithm, md5 when disallowed) throws ImageChecksumAlgorithmFailure. Algorithm names are
 * case-insensitive and may be written `sha-256`.
 */
export function parseChecksum(input: ChecksumInput, policy: ChecksumPolicy = {}): ParsedChecksum {
  const allowMd5 = policy.allowMd5 ?? true;
  const l = last;
  if (l && l.checksum === input.checksum && l.algo === input.algo && l.allowMd5 === allowMd5) return l.parsed;
  const parsed = parse(input, allowMd5);
  if (parsed.kind === 'value') Object.freeze(parsed.expected);
  last = { checksum: input.checksum, algo: input.algo, allowMd5, parsed: Object.freeze(parsed) };
  return parsed;
}

/**
 * The last checksum parsed, frozen: a caller fetching one image to many destinations gives the same one each
 * time (a warm hit parses it again otherwise).
 */
let last:
  | {
      checksum: ChecksumInput['checksum'];
      algo: ChecksumInput['algo'];
      allowMd5: boolean;
      parsed: ParsedChecksum;
    }
  | undefined;

function parse(input: ChecksumInput, allowMd5: boolean): ParsedChecksum {
  const raw = input.checksum;
  if (raw === undefined || raw === null) return { kind: 'none' };
  const checksum = raw.trim();
  const outerAlgo = input.algo?.trim() ? input.algo.trim() : undefined;

  if (checksum === '') throw new ImageChecksumAlgorithmFailure('checksum is empty', { checksum: raw });

  const scheme = SCHEME.exec(checksum);
  if (scheme) {
    const proto = (scheme[1] ?? '').toLowerCase();
    if (proto !== 'http' && proto !== 'https') {
      throw new ImageChecksumAlgorithmFailure(
        `checksum URL scheme '${proto}' is not supported (http, https only)`,
        {
          href: checksum,
        },
      );
    }
    try {
      new URL(checksum);
    } catch {
      throw new ImageChecksumAlgorithmFailure('checksum URL is malformed', { href: checksum });
    }
    if (outerAlgo === undefined) return { kind: 'url', url: checksum };
    return { kind: 'url', url: checksum, algo: checkMd5(normalizeAlgo(outerAlgo), allowMd5) };
  }

  let algo: ChecksumAlgo | undefined;
  let value = checksum;
  const colon = checksum.indexOf(':');
  if (colon >= 0) {
    const name = checksum.slice(0, colon).trim();
    value = checksum.slice(colon + 1).trim();
    if (name === '')
      throw new ImageChecksumAlgorithmFailure(`checksum '${checksum}' has no algorithm before ':'`);
    algo = normalizeAlgo(name, { checksum });
    if (value === '')
      throw new ImageChecksumAlgorithmFailure(`checksum '${checksum}' has an empty value`, { algo });
  } else if (outerAlgo !== undefined) {
    algo = normalizeAlgo(outerAlgo);
  }

  if (!isHex(value)) {
    throw new ImageChecksumAlgorithmFailure(`checksum value '${value}' is not hexadecimal`, { checksum });
  }
  if (algo === undefined) {
    algo = algoForLength(value.length);
    if (algo === undefined) {
      throw new ImageChecksumAlgorithmFailure(
        `cannot infer the algorithm of a ${value.length}-digit checksum (32 md5, 64 sha256, 128 sha512); ` +
          'give it as algo:value',
        { checksum },
      );
    }
  } else if (value.length !== HEX_LENGTH[algo]) {
    throw new ImageChecksumAlgorithmFailure(
      `a ${algo} checksum has ${HEX_LENGTH[algo]} hex digits, '${value}' has ${value.length}`,
      { checksum, algo },
    );
  }
  return { kind: 'value', expected: { algo: checkMd5(algo, allowMd5), value: value.toLowerCase() } };
}

export function checkMd5(algo: ChecksumAlgo, allowMd5: boolean): ChecksumAlgo {
  if (algo === 'md5' && !allowMd5) {
    throw new ImageChecksumAlgorithmFailure('md5 checksums are not allowed by configuration', { algo });
  }
  return algo;
}
