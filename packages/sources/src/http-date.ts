const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MON = 'jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec';

// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept.
const IMF_FIXDATE = new RegExp(
  `^(?:mon|tue|wed|thu|fri|sat|sun), (\\d{1,2}) (${MON}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) (?:GMT|UTC)$`,
  'i',
);
const RFC_850 = new RegExp(
  `^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (\\d{1,2})-(${MON})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`,
  'i',
);
const ASCTIME = new RegExp(
  `^(?:mon|tue|wed|thu|fri|sat|sun) (${MON}) ( ?\\d{1,2}) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`,
  'i',
);

/**
 * Parses an HTTP date (Last-Modified) in any of its three forms: RFC 1123 `Sun, 06 Nov 1994 08:49:37 GMT`,
 * RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, asctime `Sun Nov  6 08:49:37 1994`. Returns undefined for
 * anything else, or for a date that does not exist (31 Feb).
 */
export function parseHttpDate(text: string | undefined | null, now?: Date): Date | undefined {
  if (!text) return undefined;
  const s = text.trim();
  const fixed = imfFixdate(s);
  if (fixed !== null) return fixed;
  let m = IMF_FIXDATE.exec(s);
  if (m) return build(Number(m[3]), m[2], Number(m[1]), m[4], m[5], m[6]);
  m = RFC_850.exec(s);
  if (m) {
    // Two-digit year: a year more than 50 years in the future is the most recent past one (RFC 9110 §5.6.7).
    const thisYear = (now ?? new Date()).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    return build(year, m[2], Number(m[1]), m[4], m[5], m[6]);
  }
  m = ASCTIME.exec(s);
  if (m) return build(Number(m[6]), m[1], Number(m[2]), m[3], m[4], m[5]);
  return undefined;
}

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/**
 * The form every current server sends, `Sun, 06 Nov 1994 08:49:37 GMT`, read by position: a fresh process's
 * first fetch otherwise compiled the three patterns below for it. Null when `s` is not in exactly that shape
 * (the patterns then decide); undefined when it is, but names a date that does not exist.
 */
function imfFixdate(s: string): Date | undefined | null {
  if (s.length !== 29 || s[3] !== ',' || s[4] !== ' ' || s[7] !== ' ' || s[11] !== ' ' || s[16] !== ' ')
    return null;
  if (s[19] !== ':' || s[22] !== ':' || s[25] !== ' ' || (s.slice(26) !== 'GMT' && s.slice(26) !== 'UTC'))
    return null;
  if (!DAYS.includes(s.slice(0, 3).toLowerCase())) return null;
  const digits = [s.slice(5, 7), s.slice(12, 16), s.slice(17, 19), s.slice(20, 22), s.slice(23, 25)];
  if (!digits.every((d) => [...d].every((c) => c >= '0' && c <= '9'))) return null;
  return build(Number(digits[1]), s.slice(8, 11), Number(digits[0]), digits[2], digits[3], digits[4]);
}

/** The Last-Modified parser: same as `parseHttpDate`. */
export const parseLastModified = parseHttpDate;

function build(
  year: number,
  mon: string | undefined,
  day: number,
  hh: string | undefined,
  mm: string | undefined,
  ss: string | undefined,
): Date | undefined {
  const month = MONTHS.indexOf((mon ?? '').toLowerCase());
  const h = Number(hh);
  const mi = Number(mm);
  const se = Number(ss);
  if (month < 0 || h > 23 || mi > 59 || se > 60) return undefined;
  const date = new Date(Date.UTC(year, month, day, h, mi, Math.min(se, 59)));
  if (date.getUTCDate() !== day || date.getUTCMonth() !== month || date.getUTCFullYear() !== year)
    return undefined;
  return date;
}
