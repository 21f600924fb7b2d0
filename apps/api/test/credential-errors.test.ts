import { CredentialsExpired, CredentialsNotOwned, deserializeError } from '@imagecache/errors';
import { engineError } from '../src/errors';

/** A job's credentials gone (a board retry) or another job's (a board duplicate): a status of their own. */
test.each([
  [new CredentialsExpired('the credentials of job j were dropped', { jobId: 'j' }), 410],
  [new CredentialsNotOwned('job j names credentials that belong to another job', { jobId: 'j' }), 403],
])('%s answers its own HTTP status, also after the trip through Redis', (err, status) => {
  const back = deserializeError(JSON.parse(JSON.stringify(err.toJSON())));
  expect(back).toBeInstanceOf(err.constructor);
  const { status: got, body } = engineError(back, 'j');
  expect(got).toBe(status);
  expect(body.error.code).toBe(err.code);
});
