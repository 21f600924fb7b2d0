import type * as ChildProcess from 'node:child_process';
import { OperationAborted } from '@imagecache/errors';

/**
 * node:child_process (with net, dgram and streams behind it), loaded by the first tool run: a miss that only
 * inspects its image (most of them) doesn't pay for it.
 */
function childProcess(): typeof ChildProcess {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node:child_process') as typeof ChildProcess;
}

export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 8 KiB of stderr: enough to say why, bounded whatever the tool prints. */
  stderr: string;
}

const STDERR_KEEP = 8192;

/**
 * Runs an external tool as an asynchronous child process (the event loop stays free, so job locks keep
 * being renewed). An abort kills it at once and rejects with OperationAborted.
 */
export function runTool(
  command: string,
  args: readonly string[],
  opts: { signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new OperationAborted(`${command} not started: cancelled`));
    const child = childProcess().spawn(command, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', ...opts.env },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    const onAbort = () => child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) reject(new OperationAborted(`${command} killed: cancelled`));
      else resolve({ code, signal, stderr: stderr.trim() });
    });
  });
}
