import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FetchBodySchema } from '@imagecache/api';
import { CacheRegistry, ImageCache, silentLogger } from '@imagecache/core';
import { ImageCacheClient } from '@imagecache/queue';
import { startImageServer, tmpDir } from '@imagecache/testing';
import { HostWorker } from '@imagecache/worker';
import { REPO, SHARED_REDIS, uniquePrefix } from './harness';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

it('a new fetch option reaches the engine from every caller', async () => {
  const server = await startImageServer();
  server.route('/d.img', { body: randomBytes(4096), lastModified: new Date(0) });
  const root = tmpDir('imagecache-demo-');
  const prefix = uniquePrefix();
  const redis = { mode: 'standalone' as const, url: SHARED_REDIS, prefix };
  const w = new HostWorker({
    host: 'h1',
    registry: new CacheRegistry().register(
      new ImageCache({ name: 'i', masterDir: path.join(root, 'm'), forceRaw: false }),
    ),
    redis,
    sweepIntervalSeconds: 0,
    logger: silentLogger,
  });
  await w.start();
  const client = new ImageCacheClient({ redis, pollIntervalMs: 300 });
  try {
    // API body: accepted (a strict object: an unknown field would be refused).
    const body = FetchBodySchema.parse({
      host: 'h1',
      cache: 'i',
      href: server.url('/d.img'),
      dest: path.join(root, 'a'),
      maxBytes: 10,
    });
    expect(body.maxBytes).toBe(10);
    // The API's way: body minus wait/timeoutMs → client → job data → worker → engine.
    const { wait: _w, timeoutMs: _t, ...requested } = body;
    const { jobId } = await client.enqueueFetch(requested);
    expect((await client.getJob(jobId))?.data).toMatchObject({ maxBytes: 10 });
    const err = (await client.waitFor(jobId).catch((e) => e)) as { code: string; message: string };
    expect(err.code).toBe('USAGE_ERROR');
    expect(err.message).toContain('over maxBytes 10');
    expect(
      await client.fetchImage({
        host: 'h1',
        cache: 'i',
        href: server.url('/d.img'),
        dest: path.join(root, 'b'),
        maxBytes: 4096,
      }),
    ).toMatchObject({ size: 4096 });
    // CLI, embedded and through Redis.
    for (const args of [
      ['--master-dir', path.join(root, 'm2')],
      ['--redis', SHARED_REDIS, '--redis-prefix', prefix, '--host', 'h1', '--cache', 'i'],
    ]) {
      let out = '';
      try {
        await promisify(execFile)(
          `${REPO}/bin/imagecache`,
          [
            'fetch',
            server.url('/d.img'),
            path.join(root, `c${args.length}`),
            '--max-bytes',
            '100',
            '--json',
            ...args,
          ],
          { encoding: 'utf8' },
        );
      } catch (e) {
        out = (e as { stdout: string }).stdout;
      }
      expect(JSON.parse(out).error.message).toContain('over maxBytes 100');
    }
  } finally {
    await client.close();
    await w.close(1000);
    await server.close();
  }
}, 60_000);
