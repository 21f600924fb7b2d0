import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '@imagecache/testing';
import { cli } from './run-cli';

describe('imagecache inspect', () => {
  const dir = tmpDir();
  const good = path.join(dir, 'good.qcow2');
  const bad = path.join(dir, 'bad.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', good, '1G']);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/shadow', '-F', 'raw', bad, '1G']);

  it('prints the report of a safe image and exits 0', async () => {
    const r = await cli(['inspect', good, '--json']);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ format: 'qcow2', virtualSize: 2 ** 30, safe: true, unsafeReasons: [] });
  });

  it('exits 41 for an unsafe image and says why', async () => {
    const r = await cli(['inspect', bad]);
    expect(r.code).toBe(41);
    expect(r.stdout).toMatch(/UNSAFE: .*backing/);
  });

  it('refuses a missing file with a clear error', async () => {
    const r = await cli(['inspect', path.join(dir, 'nope'), '--json']);
    expect(r.code).not.toBe(0);
    expect(r.json().error.message).toContain('nope');
    expect(fs.existsSync(path.join(dir, 'nope'))).toBe(false);
  });
});
