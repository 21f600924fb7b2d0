import { CredentialsExpired, CredentialsNotOwned, deserializeError } from '@imagecache/errors';
import { EXIT_CODES, exitCodeFor } from '../src/exit-codes';

test('every exit status is used by one code only', () => {
  expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.keys(EXIT_CODES).length);
});

test.each([
  [new CredentialsExpired('the credentials of job j were dropped'), 24],
  [new CredentialsNotOwned('job j names credentials that belong to another job'), 25],
])('%s exits with its own status, also after the trip through Redis', (err, exit) => {
  expect(exitCodeFor(deserializeError(err.toJSON()))).toBe(exit);
});
