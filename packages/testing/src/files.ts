import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh scratch folder under the OS temp folder. */
export function tmpDir(prefix = 'imagecache-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes `size` random bytes to `file` and returns them. */
export function randomFile(file: string, size: number): Buffer {
  const data = randomBytes(size);
  fs.writeFileSync(file, data);
  return data;
}

/** Mounts a tmpfs of `sizeMiB` at a new folder; returns undefined (with the reason) where mount is refused. */
export function mountTmpfs(sizeMiB: number): { dir: string; unmount(): void } | { skip: string } {
  const dir = tmpDir('imagecache-tmpfs-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: `mount tmpfs refused: ${r.stderr || r.error?.message}` };
  return {
    dir,
    unmount: () => {
      spawnSync('umount', ['-l', dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
