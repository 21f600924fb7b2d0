import {
  ERROR_CLASSES,
  deserializeError,
  ImageChecksumError,
  ImageDownloadFailed,
  InsufficientDiskSpace,
  InvalidImage,
  UnsafeImage,
  redactHref,
} from '@imagecache/errors';

describe('errors', () => {
  it('gives every class a distinct stable code', () => {
    const codes = ERROR_CLASSES.map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(new UnsafeImage('x').code).toBe('UNSAFE_IMAGE');
    expect(new UnsafeImage('x')).toBeInstanceOf(InvalidImage);
  });

  it('never keeps credentials of an href', () => {
    const e = new ImageChecksumError('bad', { href: 'https://bob:hunter2@h/x.img?token=abc&x=1' });
    expect(JSON.stringify(e.toJSON())).not.toContain('hunter2');
    expect(JSON.stringify(e.toJSON())).not.toContain('abc');
    expect(e.href).toBe('https://***@h/x.img?token=***&x=1');
  });

  it('round-trips through JSON with class, code and fields', () => {
    const e = deserializeError(JSON.parse(JSON.stringify(new InsufficientDiskSpace('/d', 3 << 20, 1 << 20))));
    expect(e).toBeInstanceOf(InsufficientDiskSpace);
    expect((e as InsufficientDiskSpace).required).toBe(3 << 20);
    expect(e.message).toContain('3 MiB required');
    const d = deserializeError(new ImageDownloadFailed('x', { retryable: false }).toJSON());
    expect(d.retryable).toBe(false);
  });

  it('redacts userinfo without touching the rest', () => {
    expect(redactHref('http://h:8080/a?b=c')).toBe('http://h:8080/a?b=c');
    expect(redactHref('oci://user@reg/x')).toBe('oci://***@reg/x');
  });
});

describe('redactHref with an @ in the password', () => {
  it('hides all of the userinfo', () => {
    expect(redactHref('http://u:p@ss@h/x')).toBe('http://***@h/x');
  });

  it('hides a password that breaks the URL (an unencoded / ? or #)', () => {
    for (const pw of ['pa/ss', 'p?ss', 'p#ss']) {
      const shown = redactHref(`http://user:${pw}@host/x.img`);
      expect(shown).not.toContain(pw);
      expect(shown).toBe('http://***@host/x.img');
    }
    expect(redactHref('oci://reg.example/repo@sha256:abc')).toBe('oci://reg.example/repo@sha256:abc');
  });
});
