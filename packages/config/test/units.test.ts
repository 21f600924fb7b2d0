import { ConfigError } from '@imagecache/errors';
import { formatDuration, formatSize, parseDuration, parseSize } from '@imagecache/config';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

describe('parseSize', () => {
  test.each<[string | number, number]>([
    [0, 0],
    ['0', 0],
    [1024, 1024],
    ['1024', 1024],
    [' 42 ', 42],
    ['500MiB', 500 * MiB],
    ['20GiB', 20 * GiB],
    ['1.5GiB', 1.5 * GiB],
    ['2 GiB', 2 * GiB],
    ['20gib', 20 * GiB],
    ['100Mi', 100 * MiB],
    ['1KiB', 1024],
    ['1TiB', 1024 * GiB],
    ['100M', 100_000_000],
    ['100MB', 100_000_000],
    ['1kb', 1000],
    ['1K', 1000],
    ['3G', 3e9],
    ['2TB', 2e12],
    ['0.57KB', 570],
    ['.5KiB', 512],
    ['10B', 10],
  ])('%p → %p bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  test.each<[string | number]>([
    ['abc'],
    [''],
    ['  '],
    ['-5'],
    ['-5GiB'],
    [-1],
    ['1.5'],
    [1.5],
    [NaN],
    [Infinity],
    ['5XB'],
    ['GiB'],
    ['1 2 GiB'],
  ])('%p is refused', (input) => {
    expect(() => parseSize(input)).toThrow(ConfigError);
  });

  test('the error names the key and says what a size is', () => {
    let err: unknown;
    try {
      parseSize('abc', 'cacheSize');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_ERROR');
    expect((err as ConfigError).message).toBe(
      'cacheSize: "abc" is not a size (use bytes or units such as 500MiB, 20GiB)',
    );
    expect(() => parseSize('-5GiB', 'x')).toThrow('x: "-5GiB" is not a size (sizes cannot be negative)');
    expect(() => parseSize('5XB', 'x')).toThrow('unknown unit "XB"');
  });
});

describe('parseDuration', () => {
  test.each<[string | number, number]>([
    [0, 0],
    [30, 30],
    [1.5, 1.5],
    ['30', 30],
    ['30s', 30],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604800],
    ['2w', 1209600],
    ['1h30m', 5400],
    ['1h 30m', 5400],
    ['500ms', 0.5],
    ['10sec', 10],
    ['5min', 300],
    ['1H', 3600],
  ])('%p → %p s', (input, seconds) => {
    expect(parseDuration(input)).toBe(seconds);
  });

  test.each<[string | number]>([['abc'], [''], ['-1s'], [-1], ['5y'], ['h'], [NaN]])(
    '%p is refused',
    (input) => {
      expect(() => parseDuration(input, 'cacheTtl')).toThrow(/^cacheTtl: .* is not a duration/);
    },
  );
});

describe('formatSize / formatDuration', () => {
  test.each<[number, string]>([
    [0, '0 B'],
    [512, '512 B'],
    [1536, '1.5 KiB'],
    [1.5 * GiB, '1.5 GiB'],
    [20 * GiB, '20 GiB'],
    [1.234 * MiB, '1.23 MiB'],
    [3 * 1024 * GiB, '3 TiB'],
  ])('formatSize(%p) = %p', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  test.each<[number, string]>([
    [0, '0s'],
    [45, '45s'],
    [90, '1m30s'],
    [3600, '1h'],
    [5400, '1h30m'],
    [604800, '7d'],
    [1.5, '1.5s'],
  ])('formatDuration(%p) = %p, and parses back', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
    expect(parseDuration(text)).toBe(seconds);
  });

  test('formatSize output parses back', () => {
    expect(parseSize(formatSize(1.5 * GiB).replace(' ', ''))).toBe(1.5 * GiB);
  });
});
