import { ERROR_CLASSES, exitStatusOf, httpStatusOf, deserializeError, UnsafeImage } from '@imagecache/errors';
import { readRootReadme, statusTable } from '@imagecache/testing';

/** The README is the public contract: its tables are read as a user reads them. */
const README = readRootReadme();

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
  const table = statusTable(README, '### Exit status');
  const fromClasses = new Map(ERROR_CLASSES.map((c) => [c.code, [c.exitStatus]]));
  expect(Object.fromEntries(table)).toEqual(Object.fromEntries(fromClasses));
});

test('README "HTTP API" gives every class its status (the API\'s own codes aside)', () => {
  const table = statusTable(README, '### HTTP API');
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
