import * as fs from 'node:fs';
import * as path from 'node:path';
import { ERROR_CLASSES, exitStatusOf, httpStatusOf, deserializeError, UnsafeImage } from '@imagecache/errors';

/** The README is the public contract: its tables are read as a user reads them. */
const README = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');

/** The rows of the first Markdown table after `heading` whose first column is `status`, as cells. */
function tableAfter(heading: string): string[][] {
  const lines = README.split('\n');
  let i = lines.findIndex((l) => l.trim() === heading);
  if (i < 0) throw new Error(`README has no heading ${heading}`);
  while (i < lines.length && !/^\|\s*status\s*\|/.test(lines[i]!)) i++;
  const rows: string[][] = [];
  for (i++; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const cells = lines[i]!.split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (!cells.every((c) => /^-+$/.test(c))) rows.push(cells);
  }
  return rows;
}

/** The error codes a cell names (in backquotes, upper case). */
function codesIn(cell: string): string[] {
  return [...cell.matchAll(/`([A-Z][A-Z_]+)`/g)].map((m) => m[1]!);
}

/** code → the statuses the table gives it. */
function statusesByCode(rows: string[][], codesCell: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const row of rows) {
    const statuses = row[0]!.split(',').map((s) => Number(s.trim()));
    for (const code of codesIn(row[codesCell]!)) out.set(code, [...(out.get(code) ?? []), ...statuses]);
  }
  return out;
}

test('every error class declares its own code, exit status and HTTP status', () => {
  for (const cls of ERROR_CLASSES) {
    for (const field of ['code', 'exitStatus', 'httpStatus'] as const) {
      expect([cls.name, field, Object.hasOwn(cls, field)]).toEqual([cls.name, field, true]);
    }
    expect(Number.isInteger(cls.exitStatus) && cls.exitStatus > 0 && cls.exitStatus < 256).toBe(true);
    expect(cls.httpStatus >= 400 && cls.httpStatus < 600).toBe(true);
  }
});

test('each exit status belongs to one code only', () => {
  const statuses = ERROR_CLASSES.map((c) => c.exitStatus);
  expect(new Set(statuses).size).toBe(statuses.length);
});

test('README "Exit status" gives every class its status, and names no other code', () => {
  const table = statusesByCode(tableAfter('### Exit status'), 1);
  const fromClasses = new Map(ERROR_CLASSES.map((c) => [c.code, [c.exitStatus]]));
  expect(Object.fromEntries(table)).toEqual(Object.fromEntries(fromClasses));
});

test('README "HTTP API" gives every class its status (the API\'s own codes aside)', () => {
  const table = statusesByCode(tableAfter('### HTTP API'), 1);
  for (const cls of ERROR_CLASSES)
    expect([cls.code, table.get(cls.code)]).toEqual([cls.code, [cls.httpStatus]]);
});

test('the statuses follow the class, also after the trip through JSON; anything else is 1 / 500', () => {
  const e = deserializeError(new UnsafeImage('backing file').toJSON());
  expect([exitStatusOf(e), httpStatusOf(e)]).toEqual([41, 422]);
  expect([exitStatusOf(new Error('x')), httpStatusOf('x')]).toEqual([1, 500]);
  class Local extends UnsafeImage {}
  expect([exitStatusOf(new Local('x')), httpStatusOf(new Local('x'))]).toEqual([41, 422]);
});
