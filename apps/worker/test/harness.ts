import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir, track } from '@imagecache/testing';

export const REPO = path.resolve(__dirname, '../../..');
const BIN = path.join(REPO, 'bin/imagecache');
export const SHARED_REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of its own per test file: tests never see each other's queues. */
export function uniquePrefix(): string {
  return `{imagecache-test-${randomBytes(4).toString('hex')}}`;
}

export interface HostSetup {
  root: string;
  config: string;
  masterDir(cache: string): string;
  dest(name: string): string;
}

/** A host configuration file with the given caches, in a fresh folder. */
export function hostSetup(opts: {
  host: string;
  /** A Redis URL; or give `redisSection`. */
  redis?: string;
  /**
   * The configuration file's `redis` section without its prefix, for a deployment that is not one URL:
   * `{ cluster: [{ host, port }…] }` or `{ sentinels: [{ host, port }…], name }`. Replaces `redis`.
   */
  redisSection?: Record<string, unknown>;
  prefix: string;
  caches?: string[];
  forceRaw?: boolean;
  /** Default: destinations anywhere under the test's folder (its master folders excepted, always). */
  destinations?: object;
  /** The `peers` section (fleet mode): run its workers with `--peer-port 0` (fleetWorkers does). */
  peers?: object;
}): HostSetup {
  const root = tmpDir('imagecache-dist-');
  fs.mkdirSync(path.join(root, 'dest'));
  const caches = opts.caches ?? ['instance'];
  const config = path.join(root, 'host.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      host: opts.host,
      caches: caches.map((name) => ({
        name,
        masterDir: path.join(root, name),
        forceRaw: opts.forceRaw ?? false,
      })),
      redis: { ...(opts.redisSection ?? { url: opts.redis }), prefix: opts.prefix },
      destinations: opts.destinations ?? { allowedRoots: [root] },
      sweepInterval: 0,
      logLevel: 'info',
      ...(opts.peers && { peers: opts.peers }),
    }),
  );
  return { root, config, masterDir: (c) => path.join(root, c), dest: (n) => path.join(root, 'dest', n) };
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Signals the process (unless it has exited) and resolves with its exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `./bin/imagecache worker --config FILE` as its own process, ready once it says it serves (and has announced
 * itself in Redis).
 */
export async function startWorker(
  config: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<WorkerProcess> {
  const child = track(
    spawn(BIN, ['worker', '--config', config, '--lock-duration', '3', '--grace', '1', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Up to 30 s: several workers starting at once on a busy machine take their time.
  for (let i = 0; i < 600 && !out.includes('serving'); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!out.includes('serving')) {
    child.kill('SIGKILL');
    throw new Error(`worker did not start:\n${out}`);
  }
  return {
    child,
    pid: child.pid!,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Runs the client fixture in its own process: N concurrent fetches, one JSON line of outcomes. Redis is
 * `redis` + `prefix` (a URL), or `redisConfig` (a whole RedisConfig: a Cluster or Sentinel deployment).
 */
export function clientProcess(args: object): Promise<{
  code: number | null;
  results: { ok?: Record<string, unknown>; error?: { code: string } }[];
  stderr: string;
}> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [path.join(__dirname, 'fixtures/fetch-many.cjs'), JSON.stringify(args)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, IMAGECACHE_REPO: REPO },
      }),
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve({ code, results: JSON.parse(out), stderr: err });
      } catch {
        reject(new Error(`client printed no JSON (exit ${code}):\n${out}\n${err}`));
      }
    });
  });
}

/** A redis-server of the test's own, on a free port, with an append-only file so a restart keeps the jobs. */
export async function startOwnRedis(
  opts: { persist?: boolean } = {},
): Promise<{ url: string; stop(): void; restart(): Promise<void> }> {
  const port = await freePort();
  const dir = tmpDir('imagecache-redis-');
  let child: ChildProcess;
  const start = async () => {
    child = track(
      spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          // Without persistence a restart comes back empty: the jobs are lost (issue 11, R1).
          opts.persist === false ? 'no' : 'yes',
          '--appendfsync',
          'always',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      ),
    );
    for (let i = 0; i < 100; i++) {
      if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG')
        return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on ${port} did not start`);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => child.kill('SIGKILL'),
    restart: async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
      await start();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Pids of processes whose command line mentions `text` (e.g. a qemu-img working in a given folder). */
export function processesMentioning(text: string): string[] {
  return spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

/** The pid, among `pids`, that has `file` open (the replica doing a download). */
export function whoHasOpen(pids: number[], fileSuffix: string): number | undefined {
  for (const pid of pids) {
    const fdDir = `/proc/${pid}/fd`;
    for (const fd of fs.readdirSync(fdDir)) {
      try {
        if (fs.readlinkSync(path.join(fdDir, fd)).endsWith(fileSuffix)) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/** A host of a fleet on this machine: its own name, master folders, and replicas each with a peer port. */
export interface FleetHost {
  name: string;
  setup: HostSetup;
  replicas: WorkerProcess[];
}

/**
 * `hosts` hosts of one fleet, `replicas` worker processes each (every process its own peer service on a free
 * port), sharing a Redis prefix and the fleet's secret. `peers` adds to each host's `peers` section.
 */
export async function startFleet(opts: {
  hosts: string[];
  replicas: number;
  redis: string;
  prefix: string;
  secret: string;
  peers?: (host: string) => object;
}): Promise<FleetHost[]> {
  const fleet = opts.hosts.map((name) => ({
    name,
    setup: hostSetup({
      host: name,
      redis: opts.redis,
      prefix: opts.prefix,
      peers: { enabled: true, secret: opts.secret, ...opts.peers?.(name) },
    }),
    replicas: [] as WorkerProcess[],
  }));
  await Promise.all(
    fleet.flatMap((h) =>
      Array.from({ length: opts.replicas }, async () => {
        h.replicas.push(await startWorker(h.setup.config, ['--peer-port', '0']));
      }),
    ),
  );
  return fleet;
}
