import { ImageChecksumAlgorithmFailure, ImageDownloadFailed } from '@imagecache/errors';
import { imageFileName, parseChecksumFile } from '@imagecache/checksum';

const MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const OTHER256 = 'a'.repeat(64);
const SHA512 =
  'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';

function thrown(fn: () => unknown): Error & { code?: string; retryable?: boolean } {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('did not throw');
}

describe('parseChecksumFile', () => {
  it.each([
    ['a single bare hash', `${SHA256}\n`],
    ['a single bare hash with trailing whitespace', `${SHA256}   \t\r\n`],
    ['a single bare hash in upper case', SHA256.toUpperCase()],
    ['a single bare hash among comments and blank lines', `# generated\n\n  \n${SHA256}\n# end\n`],
    ['a single bare hash after a BOM', `\uFEFF${SHA256}`],
  ])('%s is the checksum whatever the name', (_n, text) => {
    expect(parseChecksumFile(text, 'anything.img')).toEqual({ algo: 'sha256', value: SHA256 });
  });

  it('infers md5 and sha512 of a single bare hash from its length', () => {
    expect(parseChecksumFile(MD5, 'x')).toEqual({ algo: 'md5', value: MD5 });
    expect(parseChecksumFile(SHA512, 'x')).toEqual({ algo: 'sha512', value: SHA512 });
  });

  it('GNU text mode (two spaces) and binary mode (space star)', () => {
    const text = `${OTHER256}  other.qcow2\n${SHA256}  image.qcow2\n`;
    expect(parseChecksumFile(text, 'image.qcow2')).toEqual({ algo: 'sha256', value: SHA256 });
    const bin = `${OTHER256} *other.qcow2\r\n${SHA256.toUpperCase()} *image.qcow2\r\n`;
    expect(parseChecksumFile(bin, 'image.qcow2')).toEqual({ algo: 'sha256', value: SHA256 });
  });

  it('GNU with a tab separator and a single entry line', () => {
    expect(parseChecksumFile(`${SHA256}\timage.qcow2\n`, 'image.qcow2')).toEqual({
      algo: 'sha256',
      value: SHA256,
    });
  });

  it('GNU names with spaces and parentheses', () => {
    const text = `${OTHER256}  my image (1).qcow2\n${SHA256}  my image (2).qcow2\n`;
    expect(parseChecksumFile(text, 'my image (2).qcow2').value).toBe(SHA256);
  });

  it('GNU escaped names (leading backslash)', () => {
    const text = `${OTHER256}  a\n\\${SHA256}  back\\\\slash\\nnewline.img\n`;
    expect(parseChecksumFile(text, 'back\\slash\nnewline.img').value).toBe(SHA256);
  });

  it('BSD style, also as sha256sum --tag and openssl dgst print it', () => {
    const text = [
      `MD5 (other.img) = ${MD5}`,
      `SHA256 (image.img) = ${SHA256}`,
      `SHA512 (third.img) = ${SHA512}`,
      `SHA2-256(openssl.img)= ${SHA256}`,
    ].join('\n');
    expect(parseChecksumFile(text, 'image.img')).toEqual({ algo: 'sha256', value: SHA256 });
    expect(parseChecksumFile(text, 'other.img')).toEqual({ algo: 'md5', value: MD5 });
    expect(parseChecksumFile(text, 'third.img')).toEqual({ algo: 'sha512', value: SHA512 });
    expect(parseChecksumFile(text, 'openssl.img')).toEqual({ algo: 'sha256', value: SHA256 });
  });

  it('BSD names with parentheses', () => {
    expect(
      parseChecksumFile(`SHA256 (x (1).img) = ${SHA256}\nSHA256 (y) = ${OTHER256}`, 'x (1).img').value,
    ).toBe(SHA256);
  });

  it('skips comments and blank lines (CentOS CHECKSUM files)', () => {
    const text = [
      '# CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2: 1234 bytes',
      '',
      `SHA256 (CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2) = ${SHA256}`,
      '# SHA256 (fake.qcow2) = ' + OTHER256,
    ].join('\n');
    expect(parseChecksumFile(text, 'CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2').value).toBe(SHA256);
    expect(() => parseChecksumFile(text, 'fake.qcow2')).toThrow(ImageDownloadFailed);
  });

  it('matches the name literally: a dot is not a wildcard', () => {
    const text = `${OTHER256}  imageXqcow2\n${SHA256}  image.qcow2\n`;
    expect(parseChecksumFile(text, 'image.qcow2').value).toBe(SHA256);
    const only = `${OTHER256}  imageXqcow2\n${MD5}  unrelated\n`;
    expect(() => parseChecksumFile(only, 'image.qcow2')).toThrow(ImageDownloadFailed);
    expect(() =>
      parseChecksumFile(`SHA256 (imageXqcow2) = ${OTHER256}\n# c\nSHA256 (b) = ${SHA256}`, 'image.qcow2'),
    ).toThrow(ImageDownloadFailed);
  });

  it('does not match a name that merely ends with the file name, nor other regex characters', () => {
    const text = `${OTHER256}  xx-image.qcow2\n${OTHER256}  image.qcow2.sig\n${SHA256}  image.qcow2\n`;
    expect(parseChecksumFile(text, 'image.qcow2').value).toBe(SHA256);
    expect(() => parseChecksumFile(`${OTHER256}  xx-image.qcow2\n${MD5}  b\n`, 'image.qcow2')).toThrow(
      ImageDownloadFailed,
    );
    expect(() => parseChecksumFile(`${OTHER256}  a+b\n${MD5}  c\n`, 'a+b*')).toThrow(ImageDownloadFailed);
    expect(parseChecksumFile(`${OTHER256}  aab\n${SHA256}  a+b\n`, 'a+b').value).toBe(SHA256);
  });

  it('a leading ./ on an entry matches by basename; other directories do not', () => {
    expect(parseChecksumFile(`${SHA256}  ./image.qcow2\n${OTHER256}  ./b\n`, 'image.qcow2').value).toBe(
      SHA256,
    );
    expect(
      parseChecksumFile(`SHA256 (./image.qcow2) = ${SHA256}\nSHA256 (b) = ${OTHER256}`, 'image.qcow2').value,
    ).toBe(SHA256);
    expect(() => parseChecksumFile(`${SHA256}  dir/image.qcow2\n${OTHER256}  b\n`, 'image.qcow2')).toThrow(
      ImageDownloadFailed,
    );
  });

  it('prefers the strongest entry for the name, or the one of the requested algorithm', () => {
    const text = `MD5 (i.img) = ${MD5}\nSHA256 (i.img) = ${SHA256}\nSHA512 (i.img) = ${SHA512}\n`;
    expect(parseChecksumFile(text, 'i.img')).toEqual({ algo: 'sha512', value: SHA512 });
    expect(parseChecksumFile(text, 'i.img', 'sha256')).toEqual({ algo: 'sha256', value: SHA256 });
    expect(parseChecksumFile(text, 'i.img', 'md5')).toEqual({ algo: 'md5', value: MD5 });
    const gnu = `${MD5}  i.img\n${SHA256}  i.img\n`;
    expect(parseChecksumFile(gnu, 'i.img')).toEqual({ algo: 'sha256', value: SHA256 });
  });

  it('refuses when the requested algorithm is not in the file', () => {
    const err = thrown(() => parseChecksumFile(`${SHA256}  i.img\n${MD5}  j.img`, 'i.img', 'sha512'));
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.message).toMatch(/no sha512 entry for i\.img \(found: sha256\)/);
    const single = thrown(() => parseChecksumFile(SHA256, 'i.img', 'sha512'));
    expect(single).toBeInstanceOf(ImageChecksumAlgorithmFailure);
  });

  it('md5 entries when md5 is disallowed', () => {
    const both = `${MD5}  i.img\n${SHA256}  i.img\n`;
    expect(parseChecksumFile(both, 'i.img', undefined, { allowMd5: false }).algo).toBe('sha256');
    const err = thrown(() =>
      parseChecksumFile(`${MD5}  i.img\n${SHA256}  j.img\n`, 'i.img', undefined, { allowMd5: false }),
    );
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.message).toMatch(/md5/);
    expect(() => parseChecksumFile(MD5, 'i.img', undefined, { allowMd5: false })).toThrow(
      ImageChecksumAlgorithmFailure,
    );
  });

  it('entries of unsupported algorithms are refused as such', () => {
    const sha1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
    const err = thrown(() => parseChecksumFile(`SHA1 (i.img) = ${sha1}\nSHA1 (j.img) = ${sha1}`, 'i.img'));
    expect(err).toBeInstanceOf(ImageChecksumAlgorithmFailure);
    expect(err.message).toMatch(/unsupported: SHA1/);
    expect(() => parseChecksumFile(`${sha1}  i.img\n${sha1}  j.img`, 'i.img')).toThrow(
      ImageChecksumAlgorithmFailure,
    );
    // a BSD algorithm that contradicts the hash's length
    expect(() =>
      parseChecksumFile(`SHA512 (i.img) = ${SHA256}\n# x\nSHA256 (j) = ${SHA256}`, 'i.img'),
    ).toThrow(ImageChecksumAlgorithmFailure);
  });

  it('not found → ImageDownloadFailed (permanent) naming the file and the redacted URL', () => {
    const err = thrown(() =>
      parseChecksumFile(`${SHA256}  other.img\n${OTHER256}  third.img\n`, 'image.img', undefined, {
        url: 'https://bob:hunter2@mirror/SHA256SUMS?token=abc123',
        href: 'https://mirror/image.img',
      }),
    ) as ImageDownloadFailed;
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.code).toBe('IMAGE_DOWNLOAD_FAILED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('image.img');
    expect(err.message).toContain('https://***@mirror/SHA256SUMS?token=***');
    expect(JSON.stringify(err.toJSON())).not.toMatch(/hunter2|abc123/);
    expect(err.details).toMatchObject({ fileName: 'image.img', href: 'https://mirror/image.img' });
  });

  it.each([
    ['empty', ''],
    ['only comments and blanks', '# a\n\n   \n#b'],
  ])('an %s file → ImageDownloadFailed (permanent)', (_n, text) => {
    const err = thrown(() => parseChecksumFile(text, 'i.img'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/empty/);
  });

  it.each([
    ['not hex', 'z'.repeat(64)],
    ['a sha1', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'],
    ['html', '<html>'],
  ])('a single line that is no checksum (%s) → ImageDownloadFailed', (_n, text) => {
    const err = thrown(() => parseChecksumFile(text, 'i.img'));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/no valid checksum/);
  });
});

describe('imageFileName', () => {
  it('is the decoded last path segment, without query or fragment', () => {
    expect(imageFileName('https://h/a/b/image.qcow2?x=1#y')).toBe('image.qcow2');
    expect(imageFileName('https://h/a/my%20image%281%29.qcow2')).toBe('my image(1).qcow2');
    expect(imageFileName('https://h/a/bad%zz.img')).toBe('bad%zz.img');
    expect(imageFileName('not a url/x.img?q')).toBe('x.img');
  });
});
