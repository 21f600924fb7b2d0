import { InvalidHref, ImageRefValidationFailed, UsageError } from '@imagecache/errors';
import { HttpSource, isImageServiceId, parseImageServiceId, resolveSource } from '@imagecache/sources';
import { caught } from './helpers';

const ID = '3f1e7c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6';

describe('href validation', () => {
  it.each([
    ['htp://x/image.img', /unknown scheme "htp"/],
    ['ftp://h/x', /unknown scheme "ftp"/],
    ['http://', /expected http/],
    ['http:///x.img', /expected http/],
    ['http:x.img', /expected http/],
    ['not a url', /whitespace/],
    ['image.qcow2', /not a URL/],
    ['http://h/a b.img', /whitespace/],
    ['http://h\\x.img', /"\\"/],
    ['http://exa mple.com/x', /whitespace/],
    ['http://[::1/x', /not a well-formed URL/],
    ['http://h:99999/x', /not a well-formed URL/],
    ['', /empty/],
    ['oci://registry/image@sha256:abc', /sha256 digest has 64 hex digits, not 3/],
    ['glance://not-a-uuid', /glance:\/\/ must be followed by an image UUID/],
  ])('refuses %p with InvalidHref', async (href, why) => {
    const err = await caught(resolveSource(href));
    expect(err).toBeInstanceOf(InvalidHref);
    expect(err).not.toBeInstanceOf(ImageRefValidationFailed);
    expect(err.code).toBe('INVALID_HREF');
    expect(err.message).toMatch(why);
  });

  it('keeps credentials out of the error of a malformed href', async () => {
    const err = await caught(resolveSource('http://user:hunter2@exa mple.com/x'));
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify((err as InvalidHref).toJSON())).not.toContain('hunter2');
    const err2 = await caught(resolveSource('gopher://user:p@ss@h/x?token=abc'));
    expect(err2.message).not.toMatch(/p@ss|ss@|abc/);
  });

  it('accepts http and https, any letter case in the scheme, without I/O', async () => {
    for (const h of ['http://example.invalid/a.img', 'HTTPS://example.invalid:8443/b.img?x=1#frag']) {
      expect(await resolveSource(h)).toBeInstanceOf(HttpSource);
    }
  });

  it('refuses a registry pull secret for an http(s) or image-service href', async () => {
    const auth = { type: 'pullSecret' as const, dockerConfigJson: '{"auths":{}}' };
    expect(await caught(resolveSource('http://example.invalid/a.img', { auth }))).toBeInstanceOf(UsageError);
    const glance = { imageService: { endpoint: 'http://glance.invalid' }, auth };
    expect(await caught(resolveSource(ID, glance))).toBeInstanceOf(UsageError);
  });

  it('strips credentials from safeHref, keeping the href as given', async () => {
    const s = await resolveSource('https://u:pw@example.invalid/x.img?sig=SECRET&v=1');
    expect(s.href).toBe('https://u:pw@example.invalid/x.img?sig=SECRET&v=1');
    expect(s.safeHref).toBe('https://***@example.invalid/x.img?sig=***&v=1');
    expect(s.imageId).toBeUndefined();
  });
});

describe('image-service ids', () => {
  it('recognises a bare UUID and glance:// forms', () => {
    expect(isImageServiceId(ID)).toBe(true);
    expect(isImageServiceId(ID.toUpperCase())).toBe(true);
    expect(isImageServiceId(`glance://${ID}`)).toBe(true);
    expect(isImageServiceId('glance://whatever')).toBe(true);
    expect(isImageServiceId('http://h/x')).toBe(false);
    expect(isImageServiceId(`${ID}x`)).toBe(false);
    expect(isImageServiceId(`${ID.slice(0, -1)}g`)).toBe(false);
  });

  it('parses the id in canonical lower case', () => {
    expect(parseImageServiceId(ID)).toBe(ID);
    expect(parseImageServiceId(ID.toUpperCase())).toBe(ID);
    expect(parseImageServiceId(`glance://${ID}`)).toBe(ID);
    expect(parseImageServiceId(`glance://glance.example:9292/${ID}`)).toBe(ID);
  });

  it('refuses malformed ids with InvalidHref', () => {
    for (const bad of ['glance://', 'glance://abc', `${ID}-0`, 'http://h/x']) {
      expect(() => parseImageServiceId(bad)).toThrow(InvalidHref);
    }
  });
});
