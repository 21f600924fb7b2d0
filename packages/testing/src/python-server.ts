import { spawn } from 'node:child_process';

/**
 * `python3 -m http.server` serving `dir` on 127.0.0.1 (an ephemeral port): an HTTP/1.0 server that closes the
 * connection after every body, as operators often serve images.
 */
export async function startPythonHttpServer(dir: string): Promise<{ base: string; close(): void }> {
  const child = spawn(
    'python3',
    ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const base = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port (\d+)/.exec(out);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    child.once('exit', () => reject(new Error(`python3 -m http.server exited: ${out}`)));
  });
  return { base, close: () => void child.kill() };
}
