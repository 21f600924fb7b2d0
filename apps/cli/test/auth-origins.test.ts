import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { cli } from './run-cli';

/** A cache's configured http.auth goes to the origins listed with it, nowhere else (issue 9). */
const body = randomBytes(64 << 10);
const TOKEN = 'cfg-token-9f3a';
let named: ImageServer;
let other: ImageServer;
let root: string;

beforeAll(async () => {
  [named, other] = await Promise.all([startImageServer(), startImageServer()]);
  for (const s of [named, other]) s.route('/img', { body, lastModified: new Date(0) });
  named.route('/away', { redirectTo: other.url('/img') });
});
afterAll(() => Promise.all([named.close(), other.close()]));
beforeEach(() => {
  root = tmpDir('imagecache-origins-');
  fs.mkdirSync(path.join(root, 'dest'));
});

function config(auth: object): string {
  const file = path.join(root, 'host.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      caches: [
        { name: 'instance', masterDir: path.join(root, 'instance'), forceRaw: false, validate: false },
      ],
      http: { auth },
      sweepInterval: 0,
    }),
  );
  return file;
}

const authOf = (s: ImageServer, p: string) =>
  s.requests.filter((r) => r.path === p).map((r) => r.headers.authorization);

it('sends the configured token to its origin only: not to another href, not after a redirect', async () => {
  const file = config({ type: 'bearer', token: TOKEN, origins: [`http://127.0.0.1:${named.port}`] });
  const fetch = (href: string, name: string) =>
    cli(['fetch', href, path.join(root, 'dest', name), '--config', file, '--json']);

  const own = await fetch(named.url('/img'), 'own');
  expect(own.code).toBe(0);
  expect(authOf(named, '/img').length).toBeGreaterThan(0);
  expect(authOf(named, '/img').every((a) => a === `Bearer ${TOKEN}`)).toBe(true);

  const elsewhere = await fetch(other.url('/img'), 'elsewhere');
  expect(elsewhere.code).toBe(0);
  expect(fs.readFileSync(path.join(root, 'dest', 'elsewhere')).equals(body)).toBe(true);
  const redirected = await fetch(named.url('/away'), 'redirected');
  expect(redirected.code).toBe(0);
  expect(authOf(named, '/away').every((a) => a === `Bearer ${TOKEN}`)).toBe(true); // the named origin: yes
  expect(authOf(other, '/img').length).toBeGreaterThanOrEqual(2); // the other origin was asked…
  expect(authOf(other, '/img').every((a) => a === undefined)).toBe(true); // …and never got the token
}, 30_000);

it('refuses configured credentials that list no origins, without quoting them', async () => {
  const file = config({ type: 'basic', username: 'u', password: 'pw-never-shown' });
  const run = await cli([
    'fetch',
    named.url('/img'),
    path.join(root, 'dest', 'x'),
    '--config',
    file,
    '--json',
  ]);
  expect(run.code).toBe(3);
  expect(run.json().error.code).toBe('CONFIG_ERROR');
  expect(run.json().error.message).toMatch(/http\.auth\.origins: is required: list the origins/);
  expect(run.stdout + run.stderr).not.toContain('pw-never-shown');
  expect(fs.existsSync(path.join(root, 'dest', 'x'))).toBe(false);
});
