import { ImageChecksumAlgorithmFailure, ImageChecksumError } from '@imagecache/errors';
import { lookupAlgo, parseChecksum, verifyDigest } from '@imagecache/checksum';

const MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA512 =
  'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';

function refused(input: Parameters<typeof parseChecksum>[0], policy?: Parameters<typeof parseChecksum>[1]) {
  try {
    parseChecksum(input, policy);
  } catch (err) {
    return err as ImageChecksumAlgorithmFailure;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe('parseChecksum: accepted forms', () => {
  it.each([
    ['absent', {}, { kind: 'none' }],
    ['null', { checksum: null, algo: 'sha256' }, { kind: 'none' }],
    ['algo only', { algo: 'sha256' }, { kind: 'none' }],
    ['md5:value', { checksum: `md5:${MD5}` }, { kind: 'value', expected: { algo: 'md5', value: MD5 } }],
    [
      'sha256:value',
      { checksum: `sha256:${SHA256}` },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'sha512:value',
      { checksum: `sha512:${SHA512}` },
      { kind: 'value', expected: { algo: 'sha512', value: SHA512 } },
    ],
    [
      'SHA256:VALUE (upper case)',
      { checksum: `SHA256:${SHA256.toUpperCase()}` },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'sha-256:value',
      { checksum: `sha-256:${SHA256}` },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'SHA2-512:value',
      { checksum: `SHA2-512:${SHA512}` },
      { kind: 'value', expected: { algo: 'sha512', value: SHA512 } },
    ],
    [
      'surrounding whitespace',
      { checksum: `  sha256: ${SHA256}\n` },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'embedded algo wins over algo',
      { checksum: `sha256:${SHA256}`, algo: 'sha512' },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'embedded algo wins over an unknown algo',
      { checksum: `sha256:${SHA256}`, algo: 'crc32' },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'bare value + algo',
      { checksum: SHA512, algo: 'sha512' },
      { kind: 'value', expected: { algo: 'sha512', value: SHA512 } },
    ],
    [
      'bare value + algo in upper case',
      { checksum: SHA256, algo: 'SHA256' },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'bare value + empty algo',
      { checksum: SHA256, algo: '' },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    ['bare 32 → md5', { checksum: MD5 }, { kind: 'value', expected: { algo: 'md5', value: MD5 } }],
    [
      'bare 64 → sha256',
      { checksum: SHA256 },
      { kind: 'value', expected: { algo: 'sha256', value: SHA256 } },
    ],
    [
      'bare 128 → sha512',
      { checksum: SHA512 },
      { kind: 'value', expected: { algo: 'sha512', value: SHA512 } },
    ],
    [
      'bare upper case',
      { checksum: SHA512.toUpperCase() },
      { kind: 'value', expected: { algo: 'sha512', value: SHA512 } },
    ],
    ['http URL', { checksum: 'http://h/SHA256SUMS' }, { kind: 'url', url: 'http://h/SHA256SUMS' }],
    [
      'HTTPS URL + algo',
      { checksum: 'HTTPS://h/x/CHECKSUM', algo: 'SHA-512' },
      { kind: 'url', url: 'HTTPS://h/x/CHECKSUM', algo: 'sha512' },
    ],
  ])('%s', (_name, input, expected) => {
    expect(parseChecksum(input)).toEqual(expected);
  });

  it('allows md5 by default and when allowMd5 is true', () => {
    expect(parseChecksum({ checksum: MD5 }, { allowMd5: true })).toEqual({
      kind: 'value',
      expected: { algo: 'md5', value: MD5 },
    });
  });

  it('keeps a URL with credentials as given (they are needed to fetch it)', () => {
    expect(parseChecksum({ checksum: 'https://u:p@h/SUMS' })).toEqual({
      kind: 'url',
      url: 'https://u:p@h/SUMS',
    });
  });
});

describe('parseChecksum: refused forms', () => {
  it.each([
    ['empty', { checksum: '' }, /empty/],
    ['blank', { checksum: '   ' }, /empty/],
    ['algo with empty value', { checksum: 'sha256:' }, /empty value/],
    ['algo with blank value', { checksum: 'sha256:  ' }, /empty value/],
    ['empty algo', { checksum: `:${SHA256}` }, /no algorithm/],
    [
      'unknown embedded algo sha1',
      { checksum: 'sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709' },
      /unsupported checksum algorithm 'sha1'/,
    ],
    ['unknown algo argument', { checksum: SHA256, algo: 'crc32' }, /unsupported checksum algorithm 'crc32'/],
    ['wrong length for embedded algo', { checksum: 'sha256:abc' }, /sha256 checksum has 64 hex digits/],
    ['sha512 with a sha256 value', { checksum: `sha512:${SHA256}` }, /sha512 checksum has 128/],
    ['bare value of the wrong length for algo', { checksum: MD5, algo: 'sha256' }, /64 hex digits/],
    [
      'bare value of unknown length',
      { checksum: 'da39a3ee5e6b4b0d3255bfef95601890afd80709' },
      /cannot infer the algorithm of a 40-digit/,
    ],
    ['not hex', { checksum: `sha256:${'g'.repeat(64)}` }, /not hexadecimal/],
    ['bare not hex', { checksum: 'z'.repeat(32) }, /not hexadecimal/],
    ['extra colon parts', { checksum: `sha256:${SHA256}:extra` }, /not hexadecimal/],
    ['ftp URL', { checksum: 'ftp://h/SUMS' }, /scheme 'ftp'/],
    ['file URL', { checksum: 'file:///etc/SUMS' }, /scheme 'file'/],
    ['malformed URL', { checksum: 'http://' }, /malformed/],
    ['URL + unknown algo', { checksum: 'https://h/SUMS', algo: 'sha1' }, /unsupported/],
  ])('%s', (_name, input, message) => {
    const err = refused(input);
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.code).toBe('IMAGE_CHECKSUM_ALGORITHM_FAILURE');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(message);
  });

  it.each([
    ['bare 32', { checksum: MD5 }],
    ['md5:value', { checksum: `md5:${MD5}` }],
    ['MD5:value', { checksum: `MD5:${MD5.toUpperCase()}` }],
    ['bare value + algo md5', { checksum: MD5, algo: 'md5' }],
    ['URL + algo md5', { checksum: 'https://h/MD5SUMS', algo: 'md5' }],
  ])('refuses md5 when disallowed: %s', (_name, input) => {
    const err = refused(input, { allowMd5: false });
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.code).toBe('IMAGE_CHECKSUM_ALGORITHM_FAILURE');
    expect(err.message).toMatch(/md5 checksums are not allowed/);
  });

  it('still accepts sha256 when md5 is disallowed', () => {
    expect(parseChecksum({ checksum: SHA256 }, { allowMd5: false }).kind).toBe('value');
  });

  it('redacts credentials of a refused URL', () => {
    const err = refused({ checksum: 'ftp://user:hunter2@h/SUMS' });
    expect(JSON.stringify(err.toJSON())).not.toContain('hunter2');
  });
});

describe('lookupAlgo', () => {
  it('is case-insensitive and accepts dashes', () => {
    expect(lookupAlgo('SHA-256')).toBe('sha256');
    expect(lookupAlgo('Sha512')).toBe('sha512');
    expect(lookupAlgo('MD5')).toBe('md5');
    expect(lookupAlgo('sha1')).toBeUndefined();
    expect(lookupAlgo('constructor')).toBeUndefined();
  });
});

describe('verifyDigest', () => {
  it('accepts equal digests whatever the case', () => {
    expect(() => verifyDigest({ algo: 'sha256', value: SHA256 }, SHA256.toUpperCase())).not.toThrow();
  });

  it('throws ImageChecksumError with both values and a redacted href on mismatch', () => {
    const actual = '0'.repeat(64);
    let err: ImageChecksumError | undefined;
    try {
      verifyDigest({ algo: 'sha256', value: SHA256 }, actual, 'https://bob:hunter2@h/img.qcow2?token=abc123');
    } catch (e) {
      err = e as ImageChecksumError;
    }
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect(err?.code).toBe('IMAGE_CHECKSUM_ERROR');
    expect(err?.message).toContain(SHA256);
    expect(err?.message).toContain(actual);
    expect(err?.message).toContain('https://***@h/img.qcow2?token=***');
    const json = JSON.stringify(err?.toJSON());
    expect(json).not.toContain('hunter2');
    expect(json).not.toContain('abc123');
    expect(err?.details).toMatchObject({ algo: 'sha256', expected: SHA256, actual });
  });
});
