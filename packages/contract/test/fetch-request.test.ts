import {
  FETCH_OPTION_KEYS,
  FetchOptionsSchema,
  FetchRequestSchema,
  fetchOptionsOf,
  RequestAuthSchema,
} from '@imagecache/contract';

describe('the fetch request', () => {
  it("names its options once: the schema's keys, which the request carries too", () => {
    expect(FETCH_OPTION_KEYS).toEqual(Object.keys(FetchOptionsSchema.shape));
    expect(FETCH_OPTION_KEYS).toEqual(expect.arrayContaining(['forceRaw', 'expectedChecksumAlgo']));
    for (const key of FETCH_OPTION_KEYS) expect(Object.keys(FetchRequestSchema.shape)).toContain(key);
  });

  it('fetchOptionsOf keeps the options given and nothing else', () => {
    const carrier = {
      href: 'http://h/x',
      dest: '/d/x',
      forceRaw: false,
      expectedFormat: undefined,
      expectedChecksumAlgo: 'sha256',
      auth: { type: 'bearer' as const, token: 'secret' },
      credentialsRef: 'ref',
      quiet: true,
    };
    const options = fetchOptionsOf(carrier);
    expect(options).toEqual({ forceRaw: false, expectedChecksumAlgo: 'sha256' });
    expect(Object.keys(options)).not.toContain('expectedFormat');
  });

  it('parses a request and refuses a wrong type or credentials of another form, naming the field', () => {
    const ok = FetchRequestSchema.parse({
      href: 'http://h/x',
      dest: '/d/x',
      expectedChecksum: 'sha256:ab',
      auth: { type: 'basic', username: 'u', password: 'p' },
    });
    expect(ok).toEqual({
      href: 'http://h/x',
      dest: '/d/x',
      expectedChecksum: 'sha256:ab',
      auth: { type: 'basic', username: 'u', password: 'p' },
    });
    const bad = FetchRequestSchema.safeParse({ href: 'http://h/x', dest: '/d/x', forceRaw: 'yes' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path)).toEqual([['forceRaw']]);
    expect(RequestAuthSchema.safeParse({ type: 'pullSecret', dockerConfigJson: '{}' }).success).toBe(false);
    expect(FetchRequestSchema.safeParse({ href: '', dest: '/d/x' }).success).toBe(false);
  });
});
