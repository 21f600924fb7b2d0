import { ImageChecksumError, redactHref } from '@imagecache/errors';
import type { ExpectedChecksum } from './types';

/** Throws ImageChecksumError unless `actualHex` is the expected digest (hex compared case-insensitively). */
export function verifyDigest(expected: ExpectedChecksum, actualHex: string, href?: string): void {
  const want = expected.value.toLowerCase();
  const got = actualHex.toLowerCase();
  if (want === got) return;
  const of = href === undefined ? '' : ` of ${redactHref(href)}`;
  throw new ImageChecksumError(`${expected.algo} checksum mismatch${of}: expected ${want}, got ${got}`, {
    href,
    algo: expected.algo,
    expected: want,
    actual: got,
  });
}
