// The hashing threads must never keep a process alive once nothing is awaited, yet must keep it alive while a
// caller awaits an answer. Proven with real child processes running the package's sources.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as path from 'node:path';

const REGISTER = path.join(__dirname, 'fixtures', 'ts-register.cjs');
const POOL = path.join(__dirname, '..', 'src', 'worker-pool.ts');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

function runNode(script: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['-r', REGISTER, '-e', script], { cwd: __dirname });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

const sha = (algo: string, byte: number, size: number, times = 1) => {
  const h = createHash(algo);
  const b = Buffer.alloc(size, byte);
  for (let i = 0; i < times; i++) h.update(b);
  return h.digest('hex');
};

describe('hashing threads and process lifetime', () => {
  it('a process exits by itself after hashing, with live workers and abandoned or destroyed hashers', async () => {
    const out = await runNode(
      `
      const { StreamHasher, allocSharedBuffer } = require('@imagecache/checksum');
      const { _poolWorkers } = require(${JSON.stringify(POOL)});
      (async () => {
        const b = allocSharedBuffer(1 << 20).fill(1);
        const hs = ['md5', 'sha256', 'sha512'].map((a) => new StreamHasher(a));
        for (const h of hs) await h.update(b);
        const digests = await Promise.all(hs.map((h) => h.digest()));
        const abandoned = new StreamHasher('sha256');
        abandoned.update(b); // neither awaited, digested nor destroyed
        const destroyed = new StreamHasher('sha256');
        destroyed.update(Buffer.alloc(10));
        destroyed.destroy();
        new StreamHasher('md5').destroy(); // never updated
        console.log(JSON.stringify({ digests, workers: _poolWorkers().length }));
      })();
      `,
      20000,
    );
    expect(out.stderr).toBe('');
    expect(out.timedOut).toBe(false);
    expect(out.code).toBe(0);
    const res = JSON.parse(out.stdout) as { digests: string[]; workers: number };
    expect(res.digests).toEqual(['md5', 'sha256', 'sha512'].map((a) => sha(a, 1, 1 << 20)));
    expect(res.workers).toBeGreaterThanOrEqual(1); // threads still alive when the script ended: unref'd, not gone
  });

  it('a process exits when its hashers were never used (fresh threads, no reply ever received)', async () => {
    const out = await runNode(
      `
      const { StreamHasher } = require('@imagecache/checksum');
      const { _poolWorkers } = require(${JSON.stringify(POOL)});
      new StreamHasher('sha256').destroy();
      new StreamHasher('sha512'); // abandoned
      console.log(_poolWorkers().length);
      `,
      20000,
    );
    expect(out.stderr).toBe('');
    expect(out.timedOut).toBe(false);
    expect(out.code).toBe(0);
    expect(Number(out.stdout)).toBeGreaterThanOrEqual(1);
  });

  it('a process awaiting nothing but a digest stays alive until it arrives', async () => {
    const out = await runNode(
      `
      const { StreamHasher, allocSharedBuffer } = require('@imagecache/checksum');
      const b = allocSharedBuffer(64 << 20).fill(7);
      const h = new StreamHasher('sha512');
      h.update(b);
      h.update(b);
      h.digest().then((d) => console.log(d));
      `,
      20000,
    );
    expect(out.stderr).toBe('');
    expect(out.timedOut).toBe(false);
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe(sha('sha512', 7, 64 << 20, 2));
  });

  it('controls: a bare unref’d worker loses its answer, a ref’d one hangs (so the checks above mean something)', async () => {
    const worker = (unref: boolean) => `
      const { Worker } = require('node:worker_threads');
      const w = new Worker("require('node:worker_threads').parentPort.on('message', (m) => setTimeout(() => require('node:worker_threads').parentPort.postMessage(m), 300))", { eval: true });
      w.on('message', (m) => console.log('answer', m));
      ${unref ? 'w.unref();' : ''}
      w.postMessage(42);
    `;
    const lost = await runNode(worker(true), 20000);
    expect(lost.timedOut).toBe(false);
    expect(lost.stdout).toBe('');
    const hung = await runNode(worker(false), 3000);
    expect(hung.stdout).toContain('answer 42');
    expect(hung.timedOut).toBe(true);
  });
});
