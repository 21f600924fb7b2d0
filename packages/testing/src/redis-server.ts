import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { track } from './processes';

/** One redis-server process (a plain server, a cluster node or a sentinel) on 127.0.0.1. */
export interface RedisServerProcess {
  port: number;
  pid: number;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  /** Whether it still runs (not killed, not exited). */
  running(): boolean;
  /** Sends `signal` (default SIGKILL) unless the process has exited; resolves once it has. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** What the process printed (its log). */
  log(): string;
}

/** redis-server is missing: no other port would help. */
class NotInstalled extends Error {}

/**
 * Whether `redis-server` can be run here (scripts/setup.sh installs it). Tests of real deployments skip with a
 * printed reason without it, except in CI (`CI=true`), where its absence must fail the run.
 */
export function redisServerAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.status === 0 && spawnSync('redis-cli', ['--version']).status === 0) return { ok: true };
  return { ok: false, reason: 'redis-server or redis-cli is not installed (scripts/setup.sh installs them)' };
}

/**
 * Starts `redis-server` with `args` (a config file may come first) on a free port of 127.0.0.1, logging into
 * `dir`, and resolves once it answers PING. `args(port)` gives the arguments, which may depend on the port (a
 * cluster node's config file). `busPort`: the port + 10000 (a cluster node's bus, as every Redis version since 3
 * places it) must be free too. A port taken meanwhile by another process is tried again with another.
 */
export async function startRedisServer(
  dir: string,
  args: (port: number) => string[],
  opts: { sentinel?: boolean; busPort?: boolean; port?: number } = {},
): Promise<RedisServerProcess> {
  // A given port (a node started again where it was) is used as it is.
  if (opts.port !== undefined) return spawnOn(opts.port, dir, args(opts.port), opts.sentinel ?? false);
  for (let attempt = 0; ; attempt++) {
    const port = opts.busPort ? await freePortWithBus() : await freePort();
    try {
      return await spawnOn(port, dir, args(port), opts.sentinel ?? false);
    } catch (err) {
      if (attempt >= 4 || err instanceof NotInstalled) throw err;
    }
  }
}

async function spawnOn(
  port: number,
  dir: string,
  args: string[],
  sentinel: boolean,
): Promise<RedisServerProcess> {
  const logFile = path.join(dir, `redis-${port}.log`);
  const child = spawn(
    'redis-server',
    [
      ...args,
      ...(sentinel ? ['--sentinel'] : []),
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--logfile',
      logFile,
      '--daemonize',
      'no',
    ],
    { stdio: 'ignore' },
  );
  track(child);
  // A redis-server that can't be run (not installed) emits 'error' and never 'exit'.
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      spawnError = err;
      resolve();
    });
  });
  const log = () => fs.readFileSync(logFile, { encoding: 'utf8', flag: 'a+' });
  const proc: RedisServerProcess = {
    port,
    pid: child.pid!,
    exited,
    running: () => !spawnError && child.exitCode === null && child.signalCode === null,
    log,
    kill: async (signal = 'SIGKILL') => {
      if (proc.running()) child.kill(signal);
      await exited;
    },
  };
  for (let i = 0; i < 200; i++) {
    if (spawnError) throw new NotInstalled(`redis-server could not be run: ${spawnError.message}`);
    if (child.exitCode !== null) break;
    if ((await redisCli(port, 'PING').catch(() => '')) === 'PONG') return proc;
    await sleep(25);
  }
  await proc.kill();
  throw new Error(`redis-server on port ${port} did not start:\n${log()}`);
}

/** `redis-cli -p PORT ARGS…` against 127.0.0.1: its output, trimmed; rejects on a non-zero exit or an error reply. */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = out.trim();
      if (code !== 0 || /^(ERR|Could not connect|Error)/.test(text) || /^\(error\)/.test(text)) {
        reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${text} ${err.trim()}`));
      } else resolve(text);
    });
  });
}

/** Polls `check` until it returns a value (not undefined), or throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`${what}: not within ${timeoutMs} ms${why}`);
    }
    await sleep(50);
  }
}

/** A free port whose port + 10000 is free too (and exists). */
async function freePortWithBus(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await isFree(port + 10000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
