import { ConfigError } from '@imagecache/errors';

/**
 * Size units. Decimal (SI) units are powers of 1000, binary (IEC) units powers of 1024:
 * `100M` = `100MB` = 100 000 000 bytes, `100Mi` = `100MiB` = 104 857 600 bytes. Units are case-insensitive.
 */
const SIZE_UNITS: Readonly<Record<string, number>> = Object.freeze({
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  p: 1e15,
  pb: 1e15,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
  pi: 2 ** 50,
  pib: 2 ** 50,
});

const DURATION_UNITS: Readonly<Record<string, number>> = Object.freeze({
  ms: 0.001,
  s: 1,
  sec: 1,
  m: 60,
  min: 60,
  h: 3600,
  d: 86400,
  w: 604800,
});

const SIZE_HINT = 'use bytes or units such as 500MiB, 20GiB';
const DURATION_HINT = 'use seconds or units such as 30s, 15m, 1h, 7d';

export type Parsed = { ok: true; value: number } | { ok: false; message: string };

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return String(value);
  return `a value of type ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}`;
}

/** Parses a size without throwing; the message names no key. */
export function trySize(value: unknown): Parsed {
  const bad = (why = SIZE_HINT): Parsed => ({ ok: false, message: `${show(value)} is not a size (${why})` });
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return bad();
    if (value < 0) return bad('sizes cannot be negative');
    if (!Number.isSafeInteger(value)) return bad('a number of bytes must be a whole number');
    return { ok: true, value };
  }
  if (typeof value !== 'string') return bad();
  const s = value.trim();
  if (s.startsWith('-')) return bad('sizes cannot be negative');
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i.exec(s);
  if (!m) return bad();
  const [, num = '', unit = ''] = m;
  const mult = SIZE_UNITS[unit.toLowerCase()];
  if (mult === undefined) return bad(`unknown unit "${unit}"; ${SIZE_HINT}`);
  if (mult === 1 && num.includes('.')) return bad('a number of bytes must be a whole number');
  // Round, not floor: 0.57 * 100 is 56.99999999999999 in floating point.
  const bytes = Math.round(Number(num) * mult);
  if (!Number.isSafeInteger(bytes)) return bad('too large');
  return { ok: true, value: bytes };
}

/** Parses a duration without throwing; the message names no key. */
export function tryDuration(value: unknown): Parsed {
  const bad = (why = DURATION_HINT): Parsed => ({
    ok: false,
    message: `${show(value)} is not a duration (${why})`,
  });
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return bad();
    if (value < 0) return bad('durations cannot be negative');
    return { ok: true, value };
  }
  if (typeof value !== 'string') return bad();
  const s = value.trim();
  if (s.startsWith('-')) return bad('durations cannot be negative');
  if (/^(\d+(?:\.\d+)?|\.\d+)$/.test(s)) return { ok: true, value: Number(s) };
  if (!/^(?:(?:\d+(?:\.\d+)?|\.\d+)\s*[a-z]+\s*)+$/i.test(s)) return bad();
  let total = 0;
  for (const part of s.matchAll(/(\d+(?:\.\d+)?|\.\d+)\s*([a-z]+)/gi)) {
    const mult = DURATION_UNITS[(part[2] ?? '').toLowerCase()];
    if (mult === undefined) return bad(`unknown unit "${part[2] ?? ''}"; ${DURATION_HINT}`);
    total += Number(part[1]) * mult;
  }
  // Keep millisecond precision, drop floating-point noise (0.1 + 0.2).
  return { ok: true, value: Math.round(total * 1000) / 1000 };
}

/**
 * Parses a size into bytes: a whole number of bytes (number or digits), or a number with a unit.
 * Decimal units: `K`/`KB` = 10^3, `M`/`MB` = 10^6, `G`/`GB` = 10^9, `T`/`TB`, `P`/`PB`.
 * Binary units: `Ki`/`KiB` = 2^10, `Mi`/`MiB` = 2^20, `Gi`/`GiB` = 2^30, `Ti`/`TiB`, `Pi`/`PiB`.
 * Units are case-insensitive; a space between number and unit is allowed; fractions are allowed with a unit
 * (`1.5GiB`) and rounded to whole bytes. Throws `ConfigError` naming `key` otherwise.
 */
export function parseSize(value: string | number, key?: string): number {
  const r = trySize(value);
  if (r.ok) return r.value;
  throw new ConfigError(key ? `${key}: ${r.message}` : r.message, key ? { key } : {});
}

/**
 * Parses a duration into seconds: a number of seconds (number or digits), or one or more number+unit parts
 * (`30s`, `15m`, `1h30m`, `7d`, `2w`, `500ms`). Units: ms, s (sec), m (min), h, d, w; case-insensitive.
 * Throws `ConfigError` naming `key` otherwise.
 */
export function parseDuration(value: string | number, key?: string): number {
  const r = tryDuration(value);
  if (r.ok) return r.value;
  throw new ConfigError(key ? `${key}: ${r.message}` : r.message, key ? { key } : {});
}

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Formats bytes for people, in binary units: `512 B`, `1.5 GiB`, `20 GiB`, `1.23 MiB` (at most 2 decimals). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let n = Math.abs(bytes);
  let i = 0;
  while (n >= 1024 && i < BINARY.length - 1) {
    n /= 1024;
    i++;
  }
  const text = i === 0 ? String(Math.round(n)) : String(Number(n.toFixed(2)));
  return `${sign}${text} ${BINARY[i]}`;
}

/** Formats seconds as a duration `parseDuration` reads back: `7d`, `1h30m`, `45s`, `0s`, `1.5s` (days at most). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  if (seconds === 0) return '0s';
  let rest = Math.floor(seconds);
  const frac = Math.round((seconds - rest) * 1000) / 1000;
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || frac > 0) parts.push(`${rest + frac}s`);
  return parts.join('');
}
