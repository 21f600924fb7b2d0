import { OperationAborted } from '@imagecache/errors';
import { KeystoneSession, resolveHttpOptions } from '@imagecache/sources';
import { startImageServer } from '@imagecache/testing';

/** A caller's abort is OperationAborted whatever reason its signal carries (the CLI's is the signal's name). */
test('a token asked for with an aborted signal fails typed, and asks Keystone nothing', async () => {
  const keystone = await startImageServer(); // stands for Keystone: it must see no request
  try {
    const creds = { authUrl: keystone.url('/v3'), username: 'demo', password: 'demopw' };
    const session = new KeystoneSession(creds, resolveHttpOptions({}));
    const controller = new AbortController();
    controller.abort(new Error('received SIGINT'));
    const err = await session.token(controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationAborted);
    expect((err as OperationAborted).code).toBe('ABORTED');
    expect(keystone.requests).toEqual([]);
  } finally {
    await keystone.close();
  }
});
