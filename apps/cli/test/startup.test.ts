import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startImageServer, tmpDir, type ImageServer } from '@imagecache/testing';
import { cli, REPO } from './run-cli';

const RECORDER = path.join(__dirname, 'record-loaded-modules.cjs');
const BUNDLE = path.join(REPO, 'apps/cli/dist/imagecache.js');
const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
  version: string;
};

/**
 * What a verb's run modules load; `--help` and `--version` need none of it. Inside the bundle the engine's
 * packages are no files of their own: these patterns are checked on the unbundled build (the same sources, whose
 * lazy imports the bundle keeps lazy), and the bundle's runs are checked for what they load beside it.
 */
const HEAVY = [
  /node_modules\/\.pnpm\/(zod|undici|yaml|pino|proper-lockfile|bullmq|ioredis|fastify|@bull-board[^/]*|cli-progress)@/,
  /\/packages\/(core|config|sources|checksum|formats|queue|contract|host)\/dist\//,
  /\/apps\/(worker|api)\/dist\//,
  /\/apps\/cli\/dist\/(host|options|remote|progress|logger|commands\/[a-z-]+-run)\.js$/,
];

/** Node's own modules a plain-http fetch of a small raw image never needs (loaded at the first use of each). */
const NOT_NEEDED = /^node:(child_process|dgram|tls|_tls_wrap|worker_threads|dns)$/;

let root: string;
beforeEach(() => {
  root = tmpDir('imagecache-startup-');
});

/** Runs the CLI (the bundle, or the unbundled build) and returns its result with the files of the modules it loaded. */
async function loading(args: string[], opts: { unbundled?: boolean } = {}) {
  const list = path.join(root, `loaded-${Math.random().toString(36).slice(2)}.json`);
  const run = await cli(args, {
    env: { NODE_OPTIONS: `--require ${RECORDER}`, IMAGECACHE_TEST_LOADED_MODULES: list },
    unbundled: opts.unbundled,
  });
  return { run, modules: JSON.parse(fs.readFileSync(list, 'utf8')) as string[] };
}

const matching = (modules: string[], patterns: RegExp[]) =>
  modules.filter((m) => patterns.some((p) => p.test(m)));

/** The files a bundled run loaded beside the recorder and the bundle: the error classes are shared with the worker. */
const besideTheBundle = (modules: string[]) => {
  expect(modules).toContain(BUNDLE);
  return modules.filter(
    (m) => m !== RECORDER && m !== BUNDLE && !m.startsWith('node:') && !/\/packages\/errors\/dist\//.test(m),
  );
};

describe('the bundle', () => {
  it('has a V8 code cache this node accepts (else every call compiles what it runs)', () => {
    // What dist/imagecache.js does, asking V8 whether it took the cache.
    const check = `
      const fs = require('node:fs'), vm = require('node:vm');
      const bundle = ${JSON.stringify(BUNDLE.replace(/\.js$/, '.bundle.js'))};
      const source = fs.readFileSync(bundle, 'utf8').replace(/^#!.*/, '');
      const script = new vm.Script('(function (exports, require, module, __filename, __dirname) {' + source + '\\n})', {
        filename: bundle,
        cachedData: fs.readFileSync(bundle.replace(/\\.js$/, '.cache')),
      });
      process.stdout.write(String(script.cachedDataRejected));`;
    const r = spawnSync(process.execPath, ['-e', check], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('false');
  });
});

describe('imagecache --version', () => {
  it.each([['--version'], ['-V']])('%s prints the package version and exits 0', async (flag) => {
    const { run, modules } = await loading([flag]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${version}\n`);
    expect(run.stderr).toBe('');
    expect(besideTheBundle(modules)).toEqual([]);
  });
});

describe('start-up', () => {
  it.each([[['--help']], [['fetch', '--help']], [['worker', '--help']]])(
    '%j loads no engine, schema, HTTP client, queue or logger',
    async (args) => {
      const { run, modules } = await loading(args, { unbundled: true });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('Usage: imagecache');
      // The recorder works: the CLI's own modules are in the list.
      expect(modules.some((m) => m.endsWith('/apps/cli/dist/program.js'))).toBe(true);
      expect(matching(modules, HEAVY)).toEqual([]);

      const bundled = await loading(args);
      expect(bundled.run.stdout).toBe(run.stdout);
      expect(besideTheBundle(bundled.modules)).toEqual([]);
    },
  );

  describe('a warm cache hit', () => {
    let server: ImageServer;
    beforeEach(async () => {
      server = await startImageServer();
      server.route('/disk.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
      server.route('/other.img', { body: randomBytes(1 << 20), lastModified: new Date(0) });
    });
    afterEach(() => server.close());

    it('loads only what the hit needs: no YAML, logger, progress bar, Redis, HTTP server or all of undici', async () => {
      const master = path.join(root, 'master');
      fs.mkdirSync(path.join(root, 'dest'));
      const fetch = (name: string, opts: { unbundled?: boolean } = { unbundled: true }) =>
        loading(
          ['fetch', server.url('/disk.img'), path.join(root, 'dest', name), '--master-dir', master, '-q'],
          opts,
        );
      const miss = await fetch('a.img');
      expect(miss.run.code).toBe(0);
      // The miss does load them (the patterns below name real files).
      for (const loaded of [/proper-lockfile@/, /\/packages\/formats\//, /^node:net$/])
        expect(matching(miss.modules, [loaded])).not.toEqual([]);
      // At the default level its one line (info) is dropped before pino is loaded.
      expect(matching(miss.modules, [/node_modules\/\.pnpm\/pino@/])).toEqual([]);

      // The bundle's miss: nothing outside the bundle, nor Node's modules for what it didn't do: run a tool, a
      // hashing thread (1 MiB is hashed as it arrives), https, a redirect to a name.
      const bundledMiss = await loading(
        ['fetch', server.url('/other.img'), path.join(root, 'dest', 'o.img'), '--master-dir', master, '-q'],
        {},
      );
      expect(bundledMiss.run.stdout).toContain('downloaded 1 MiB');
      expect(besideTheBundle(bundledMiss.modules)).toEqual([]);
      expect(matching(bundledMiss.modules, [NOT_NEEDED])).toEqual([]);

      const hit = await fetch('b.img');
      expect(hit.run.code).toBe(0);
      expect(hit.run.stdout).toContain('cache hit');
      expect(fs.statSync(path.join(root, 'dest', 'b.img')).ino).toBe(
        fs.statSync(path.join(root, 'dest', 'a.img')).ino,
      );
      // The lock library and the format inspector load with the engine (every miss needs them: a fresh process's
      // first miss paid for loading them inside the call); the rest only when a call needs it.
      expect(
        matching(hit.modules, [
          /node_modules\/\.pnpm\/(yaml|pino|uuid|bullmq|ioredis|fastify|cli-progress)@/,
          /\/undici\/index\.js$/,
          /\/packages\/(queue|contract)\//,
          /^node:(worker_threads|tls)$/, // (commander loads child_process here; the bundle defers it)
        ]),
      ).toEqual([]);

      // The bundle's hit: nothing but the bundle (and the error classes).
      const bundled = await fetch('c.img', {});
      expect(bundled.run.stdout).toContain('cache hit');
      expect(besideTheBundle(bundled.modules)).toEqual([]);
      expect(matching(bundled.modules, [NOT_NEEDED])).toEqual([]);
    });
  });
});
