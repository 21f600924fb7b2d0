import { parseContentRange } from './content-range';
import { header, type HttpResponse } from './request';

/** Where a resumed answer starts, and the size of the whole file when the server said it. */
export interface ResumedRange {
  start: number;
  totalSize?: number;
}

export interface RangedAnswer {
  res: HttpResponse;
  /** Set when `res` is a 206 that continues the file at the offset asked: its body is the rest of the file. */
  resumed?: ResumedRange;
}

/**
 * The resume rule of every source (spec.md §2.8), in one place. A GET from `offset` asks `Range: bytes=N-`
 * (with `If-Range: validator` when one is given: the server then answers the range only if the file is still
 * that one). The answer:
 * - 206 whose Content-Range starts at `offset`: resumed;
 * - 416 (the range is past the end: the file changed or shrank), or a 206 of another range: start over with a
 *   plain GET, once;
 * - anything else (200: the whole file, the server ignoring Range or If-Range failing; an error status) is the
 *   caller's to read, as the answer to a plain GET.
 * `offset` 0 makes a plain GET.
 */
export async function rangedGet(
  get: (headers: Record<string, string>) => Promise<HttpResponse>,
  offset: number,
  validator?: string,
): Promise<RangedAnswer> {
  if (offset <= 0) return { res: await get({}) };
  const headers: Record<string, string> = { range: `bytes=${offset}-` };
  if (validator !== undefined) headers['if-range'] = validator;
  const res = await get(headers);
  if (res.status === 206 && res.body) {
    const range = parseContentRange(header(res.headers, 'content-range'));
    if (range && range.start === offset) return { res, resumed: { start: offset, totalSize: range.total } };
  } else if (res.status !== 416) {
    return { res };
  }
  res.body?.destroy();
  return { res: await get({}) };
}
