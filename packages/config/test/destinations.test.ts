import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, parseHostConfig, requireDestinationPolicy } from '@imagecache/config';
import { tmpDir } from '@imagecache/testing';
import { configError, issuesOf } from './helpers';

const one = () => ({ caches: [{ name: 'instance', masterDir: '/m/instance' }] });

describe('destinations and file.allowHardLinks', () => {
  test('default: no roots, not unrestricted, hard-linked file:// images refused', () => {
    const c = parseHostConfig(one());
    expect(c.destinations).toEqual({ unrestricted: false });
    expect(c.file.allowHardLinks).toBe(false);
  });

  test('allowedRoots are made canonical at load (a symlinked root is resolved; a missing one kept)', () => {
    const dir = tmpDir('imagecache-destroots-');
    const real = path.join(dir, 'real');
    fs.mkdirSync(real);
    fs.symlinkSync(real, path.join(dir, 'alias'));
    const c = parseHostConfig({
      ...one(),
      destinations: { allowedRoots: [path.join(dir, 'alias'), path.join(dir, 'later/')] },
    });
    expect(c.destinations.allowedRoots).toEqual([fs.realpathSync(real), path.join(dir, 'later')]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('allowedRoots must be absolute and not empty; unknown keys get a hint', () => {
    const rel = configError(() => parseHostConfig({ ...one(), destinations: { allowedRoots: ['dest'] } }));
    expect(issuesOf(rel)[0]!.path).toBe('destinations.allowedRoots[0]');
    const empty = configError(() => parseHostConfig({ ...one(), destinations: { allowedRoots: [] } }));
    expect(issuesOf(empty)[0]!.path).toBe('destinations.allowedRoots');
    const typo = configError(() => parseHostConfig({ ...one(), destinations: { allowedRoot: ['/d'] } }));
    expect(typo.message).toContain('allowedRoots');
  });

  test('IMAGECACHE_DEST_ROOTS sets the roots', () => {
    const dir = tmpDir('imagecache-destenv-');
    const file = path.join(dir, 'host.json');
    fs.writeFileSync(file, JSON.stringify(one()));
    const c = loadConfig({ file, env: { IMAGECACHE_DEST_ROOTS: '/srv/a:/srv/b' } });
    expect(c.destinations.allowedRoots).toEqual(['/srv/a', '/srv/b']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the worker and the API need allowedRoots, or an explicit unrestricted: true', () => {
    const bare = parseHostConfig(one());
    for (const service of ['worker', 'api'] as const) {
      const err = configError(() => requireDestinationPolicy(bare, service));
      expect(err.message).toContain(`the ${service} needs destinations.allowedRoots`);
      expect(err.message).toContain('destinations.unrestricted: true');
    }
    expect(() =>
      requireDestinationPolicy(
        parseHostConfig({ ...one(), destinations: { allowedRoots: ['/d'] } }),
        'worker',
      ),
    ).not.toThrow();
    expect(() =>
      requireDestinationPolicy(parseHostConfig({ ...one(), destinations: { unrestricted: true } }), 'api'),
    ).not.toThrow();
  });
});
