import {
  ERROR_CLASSES,
  deserializeError,
  ImageChecksumError,
  ImageDownloadFailed,
  InsufficientDiskSpace,
  InvalidImage,
  UnsafeImage,
  redactHref,
  redactText,
  ImageChecksumAlgorithmFailure,
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

describe('URLs held in other values and in texts', () => {
  it('redacts a checksum URL behind an algorithm prefix', () => {
    expect(redactHref('sha256:http://user:PASS@host/SHA256SUMS')).toBe('sha256:http://***@host/SHA256SUMS');
    expect(redactHref('sha256:https://host/S?sig=abc')).toBe('sha256:https://host/S?sig=***');
    expect(redactHref('sha256:' + 'ab'.repeat(32))).toBe('sha256:' + 'ab'.repeat(32));
  });

  it('redacts every URL quoted in a text, and leaves the rest as it is', () => {
    expect(redactText("value 'http://u:pw@h/x' is bad; see https://h2/y?token=t&a=1: done")).toBe(
      "value 'http://***@h/x' is bad; see https://h2/y?token=***&a=1: done",
    );
    expect(redactText('no url here? a=b')).toBe('no url here? a=b');
  });

  it("keeps credentials out of every error's message and string details", () => {
    const e = new ImageChecksumAlgorithmFailure("checksum 'sha256:http://u:hunter2@h/S' is bad", {
      checksum: 'sha256:http://u:hunter2@h/S',
    });
    expect(JSON.stringify(e.toJSON())).not.toContain('hunter2');
    expect(e.message).toBe("checksum 'sha256:http://***@h/S' is bad");
    expect(deserializeError(e.toJSON()).message).toBe(e.message);
  });
});
