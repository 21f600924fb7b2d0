import * as path from 'node:path';
import { parseHostConfig } from '@imagecache/config';
import { silentLogger } from '@imagecache/core';
import { ConfigError } from '@imagecache/errors';
import { openHost } from '@imagecache/host';
import { tmpDir } from '@imagecache/testing';
import { hostWorkerOptions } from '@imagecache/worker';

describe('hostWorkerOptions', () => {
  const root = tmpDir('imagecache-hwo-');
  const caches = [
    { name: 'instance', masterDir: path.join(root, 'instance') },
    { name: 'iso', masterDir: path.join(root, 'iso') },
  ];

  it("takes the host's name, caches, Redis, download limit and sweep from its configuration", () => {
    const host = openHost(
      parseHostConfig({
        host: 'node-7',
        caches,
        redis: { url: 'redis://127.0.0.1:6379', prefix: '{p}' },
        downloadConcurrency: 3,
        sweepInterval: '10m',
      }),
      silentLogger,
    );
    const opts = hostWorkerOptions(host, { gracePeriodMs: 1000, logger: silentLogger });
    expect(opts).toMatchObject({
      host: 'node-7',
      redis: { url: 'redis://127.0.0.1:6379', prefix: '{p}' },
      concurrency: 3,
      sweepIntervalSeconds: 600,
      gracePeriodMs: 1000,
    });
    expect(opts.registry).toBe(host.registry);
    expect(opts.registry.caches.map((c) => c.name)).toEqual(['iso', 'instance']);
  });

  it('refuses a configuration without Redis (CONFIG_ERROR)', () => {
    const host = openHost(parseHostConfig({ caches }), silentLogger);
    expect(() => hostWorkerOptions(host, { logger: silentLogger })).toThrow(ConfigError);
  });
});
