import { parseHttpDate, parseLastModified } from '@imagecache/sources';

const EXPECTED = '1994-11-06T08:49:37.000Z';

describe('parseLastModified', () => {
  it.each([
    'Sun, 06 Nov 1994 08:49:37 GMT',
    'Sunday, 06-Nov-94 08:49:37 GMT',
    'Sun Nov  6 08:49:37 1994',
    'sun, 06 nov 1994 08:49:37 gmt',
    ' Sun, 6 Nov 1994 08:49:37 GMT ',
    'Sun, 06 Nov 1994 08:49:37 UTC',
  ])('parses %p', (text) => {
    expect(parseLastModified(text)?.toISOString()).toBe(EXPECTED);
  });

  it('reads a two-digit year as the most recent past year that fits (RFC 9110)', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    expect(parseHttpDate('Monday, 06-Nov-79 08:49:37 GMT', now)?.getUTCFullYear()).toBe(2079);
    expect(parseHttpDate('Monday, 06-Nov-81 08:49:37 GMT', now)?.getUTCFullYear()).toBe(1981);
    expect(parseHttpDate('Monday, 06-Nov-24 08:49:37 GMT', now)?.getUTCFullYear()).toBe(2024);
  });

  it.each([
    undefined,
    '',
    'yesterday',
    '1994-11-06T08:49:37Z',
    'Sun, 31 Feb 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 25:49:37 GMT',
    'Sun, 06 Foo 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 0a:49:37 GMT',
    'Xyz, 06 Nov 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 08:49:37 +0200',
    '784111777',
  ])('gives undefined for %p', (text) => {
    expect(parseLastModified(text)).toBeUndefined();
  });
});
