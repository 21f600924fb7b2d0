import { ImageChecksumAlgorithmFailure, ImageDownloadFailed, redactHref } from '@imagecache/errors';
import { algoForLength, HEX_LENGTH, isHex, lookupAlgo, strength } from './algorithms';
import { checkMd5 } from './parse';
import type { ChecksumAlgo, ExpectedChecksum } from './types';

export interface ChecksumFileOptions {
  /** The checksum file's URL, for error messages (credentials are redacted). */
  url?: string;
  /** The image's href, carried as the errors' `href`. */
  href?: string;
  /** Accept md5 entries (default true). */
  allowMd5?: boolean;
}

// GNU coreutils: `HASH  name` (text mode) or `HASH *name` (binary mode); a leading `\` means the name is escaped.
const GNU = /^(\\?)([0-9a-fA-F]+)[ \t]+\*?(.+)$/;
// BSD / `sha256sum --tag` / openssl dgst: `SHA256 (name) = HASH`, `SHA2-256(name)= HASH`.
const BSD = /^([A-Za-z0-9_-]+)[ \t]*\((.*)\)[ \t]*=[ \t]*([0-9a-fA-F]+)$/;

interface Entry {
  algo: ChecksumAlgo;
  value: string;
}

/**
 * Finds the checksum of `fileName` in the text of a checksum file (spec.md §4).
 *
 * - Blank lines and lines starting with `#` are skipped.
 * - A file holding a single bare hash (no whitespace inside the line) is the checksum, whatever the name.
 * - Otherwise the entry naming the image: GNU `HASH  name` / `HASH *name` (escaped `\HASH  name` too) or
 *   BSD `ALGO (name) = HASH`. The name is compared **literally** (no pattern: `.` is a dot, and
 *   `xx-image.qcow2` is not `image.qcow2`). A leading `./` on the entry's name is ignored (`sha256sum ./*`);
 *   other directories are not (`a/image.qcow2` and `b/image.qcow2` would be ambiguous).
 * - The algorithm comes from BSD's ALGO, else from the hash's length. When `algo` is given only entries of that
 *   algorithm count; otherwise the strongest entry for the name wins (sha512 > sha256 > md5), the first of equals.
 *
 * Not found → ImageDownloadFailed (retryable: false) naming the file and the checksum URL. Usable entries that are
 * all of another algorithm than `algo`, unsupported (sha1…), or md5 when disallowed → ImageChecksumAlgorithmFailure.
 */
export function parseChecksumFile(
  text: string,
  fileName: string,
  algo?: ChecksumAlgo,
  opts: ChecksumFileOptions = {},
): ExpectedChecksum {
  const allowMd5 = opts.allowMd5 ?? true;
  const where = opts.url === undefined ? 'checksum file' : `checksum file ${redactHref(opts.url)}`;
  const details = {
    href: opts.href,
    fileName,
    ...(opts.url === undefined ? {} : { checksumUrl: redactHref(opts.url) }),
  };
  const lines = text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  if (lines.length === 0) {
    throw new ImageDownloadFailed(`${where} is empty`, { ...details, retryable: false });
  }

  const only = lines[0];
  if (lines.length === 1 && only !== undefined && !/\s/.test(only)) {
    const found = isHex(only) ? algoForLength(only.length) : undefined;
    if (found === undefined) {
      throw new ImageDownloadFailed(
        `${where} holds no valid checksum (a single line that is not a md5/sha256/sha512)`,
        {
          ...details,
          retryable: false,
        },
      );
    }
    if (algo !== undefined && found !== algo) {
      throw new ImageChecksumAlgorithmFailure(
        `${where} holds a ${only.length}-digit checksum, a ${algo} checksum has ${HEX_LENGTH[algo]}`,
        { ...details, algo },
      );
    }
    return { algo: checkMd5(found, allowMd5), value: only.toLowerCase() };
  }

  const entries: Entry[] = [];
  const unsupported: string[] = [];
  for (const line of lines) {
    let name: string;
    let hash: string;
    let declared: string | undefined;
    const bsd = BSD.exec(line);
    const gnu = bsd ? null : GNU.exec(line);
    if (bsd) {
      declared = bsd[1] ?? '';
      name = bsd[2] ?? '';
      hash = bsd[3] ?? '';
    } else if (gnu) {
      hash = gnu[2] ?? '';
      name = gnu[1] ? unescapeGnu(gnu[3] ?? '') : (gnu[3] ?? '');
    } else {
      continue;
    }
    if (stripDotSlash(name) !== fileName) continue;
    const byLength = algoForLength(hash.length);
    if (declared !== undefined) {
      const named = lookupAlgo(declared);
      if (named === undefined || named !== byLength) {
        unsupported.push(named === undefined ? declared : `${declared} with ${hash.length} digits`);
        continue;
      }
    } else if (byLength === undefined) {
      unsupported.push(`${hash.length}-digit hash`);
      continue;
    }
    entries.push({ algo: byLength, value: hash.toLowerCase() });
  }

  if (entries.length === 0) {
    if (unsupported.length > 0) {
      throw new ImageChecksumAlgorithmFailure(
        `${where} has no usable entry for ${fileName} (unsupported: ${unsupported.join(', ')})`,
        { ...details },
      );
    }
    throw new ImageDownloadFailed(`${where} does not contain an entry for ${fileName}`, {
      ...details,
      retryable: false,
    });
  }
  const wanted = algo === undefined ? entries : entries.filter((e) => e.algo === algo);
  if (wanted.length === 0) {
    const have = [...new Set(entries.map((e) => e.algo))].join(', ');
    throw new ImageChecksumAlgorithmFailure(
      `${where} has no ${algo} entry for ${fileName} (found: ${have})`,
      {
        ...details,
        algo,
      },
    );
  }
  const allowed = allowMd5 ? wanted : wanted.filter((e) => e.algo !== 'md5');
  if (allowed.length === 0) checkMd5('md5', false);
  let best = allowed[0] as Entry;
  for (const e of allowed) if (strength(e.algo) > strength(best.algo)) best = e;
  return { algo: best.algo, value: best.value };
}

function stripDotSlash(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  return n;
}

// coreutils escapes `\` as `\\`, newline as `\n` and carriage return as `\r` when the line starts with `\`.
function unescapeGnu(name: string): string {
  return name.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

/**
 * The name an image is listed under in a checksum file: the last segment of the URL's path, percent-decoded
 * (the query and fragment are ignored). Falls back to the raw segment when it does not decode.
 */
export function imageFileName(href: string): string {
  let path: string;
  try {
    path = new URL(href).pathname;
  } catch {
    path = href.split(/[?#]/)[0] ?? href;
  }
  const segment = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
