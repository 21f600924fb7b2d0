import { spawn } from 'node:child_process';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '../../..');
export const BIN = path.join(REPO, 'bin/imagecache');
/** The same program unbundled (tsc's output, one file per module): where what a verb loads can be counted. */
export const UNBUNDLED = path.join(REPO, 'apps/cli/dist/main.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * Runs `./bin/imagecache ARGS` as a user would (built dist; see the README's test command), or with `unbundled`
 * node with the unbundled build.
 */
export function cli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; onSpawn?: (pid: number) => void; unbundled?: boolean } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const [command, argv] = opts.unbundled ? [process.execPath, [UNBUNDLED, ...args]] : [BIN, args];
    const child = spawn(command, argv, {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout,
        stderr,
        json: () => {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`not JSON on stdout: ${stdout}\nstderr: ${stderr}`);
          }
        },
      }),
    );
  });
}
