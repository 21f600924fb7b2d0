import { ERROR_CLASSES } from '@imagecache/errors';
import { readRootReadme, statusTable } from '@imagecache/testing';
import { API_ERRORS } from '../src/errors';

/** README "HTTP API" lists the engine's codes (held to their classes in packages/errors) and the API's own. */
const table = statusTable(readRootReadme(), '### HTTP API');

test("README gives each of the API's own errors its status", () => {
  for (const { code, status } of Object.values(API_ERRORS)) {
    expect([code, table.get(code)?.includes(status)]).toEqual([code, true]);
  }
});

test('README names no code that is neither an error class nor one of the API', () => {
  const known = new Set([
    ...ERROR_CLASSES.map((c) => c.code),
    ...Object.values(API_ERRORS).map((e) => e.code),
  ]);
  expect([...table.keys()].filter((code) => !known.has(code))).toEqual([]);
});
