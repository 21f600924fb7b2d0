import { PeerTokenInvalid } from '@imagecache/errors';
import { signPeerToken, verifyPeerToken } from '@imagecache/peers';

const secret = 'shared by the fleet and nobody else';
const name = 'instance/0b6e6b8c-6b8e-5c36-9f0e-0b0a0e1e2f3a';
const now = 1_800_000_000_000;

function refusal(fn: () => void): PeerTokenInvalid {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PeerTokenInvalid);
    return err as PeerTokenInvalid;
  }
  throw new Error('accepted');
}

test('a token grants its name until its expiry', () => {
  const token = signPeerToken(secret, name, 60, now);
  expect(token).toMatch(/^1800000060\.[A-Za-z0-9_-]{43}$/);
  verifyPeerToken(secret, token, name, now);
  verifyPeerToken(Buffer.from(secret), token, name, now + 59_999);
  const late = refusal(() => verifyPeerToken(secret, token, name, now + 60_000));
  expect(late.code).toBe('PEER_TOKEN_INVALID');
  expect(late.details.reason).toBe('expired');
});

test.each([
  ['another name', (t: string) => verifyPeerToken(secret, t, 'instance/other', now), 'signature'],
  [
    'another cache',
    (t: string) => verifyPeerToken(secret, t, name.replace('instance', 'tftp'), now),
    'signature',
  ],
  ['another secret', (t: string) => verifyPeerToken('not the fleet secret', t, name, now), 'signature'],
  [
    'a later expiry written in',
    (t: string) => verifyPeerToken(secret, t.replace(/^\d+/, '1900000000'), name, now),
    'signature',
  ],
  [
    'a changed MAC',
    (t: string) => verifyPeerToken(secret, t.slice(0, -2) + (t.endsWith('AA') ? 'BB' : 'AA'), name, now),
    'signature',
  ],
  ['no token', () => verifyPeerToken(secret, undefined, name, now), 'malformed'],
  ['a truncated token', (t: string) => verifyPeerToken(secret, t.slice(0, -1), name, now), 'malformed'],
  ['junk', () => verifyPeerToken(secret, 'Bearer x', name, now), 'malformed'],
])('refused: %s', (_what, check, reason) => {
  const token = signPeerToken(secret, name, 60, now);
  const err = refusal(() => check(token));
  expect(err.details.reason).toBe(reason);
  // Neither the secret nor the token is quoted.
  expect(JSON.stringify(err.toJSON())).not.toContain(secret);
  expect(JSON.stringify(err.toJSON())).not.toContain(token.split('.')[1]);
});

test('an empty secret is a usage error, on both sides', () => {
  expect(() => signPeerToken('', name)).toThrow(expect.objectContaining({ code: 'USAGE_ERROR' }));
  expect(() => verifyPeerToken('', 'x', name)).toThrow(expect.objectContaining({ code: 'USAGE_ERROR' }));
});
