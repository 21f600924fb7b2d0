import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CacheSchema,
  ENV_VARIABLES,
  FileSchema,
  HostConfigSchema,
  HttpSchema,
  ImageServiceSchema,
  OciPlatformSchema,
  OciRegistrySchema,
  OciSchema,
  PeersSchema,
  QemuImgSchema,
  loadConfig,
} from '@imagecache/config';
import { tmpDir } from '@imagecache/testing';
import { configError } from './helpers';

const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
/** A table row starting with `name` (prettier pads the cells). */
const row = (name: string) => new RegExp(`^\\| \`${name.replace(/[[\]().*+?^$|\\]/g, '\\$&')}\` +\\|`, 'm');

test('the README documents every key', () => {
  const keys = [
    ...Object.keys(HostConfigSchema.def.in.shape),
    ...Object.keys(CacheSchema.shape).map((k) => `caches[].${k}`),
    ...Object.keys(HttpSchema.shape).map((k) => `http.${k}`),
    ...Object.keys(FileSchema.shape).map((k) => `file.${k}`),
    ...Object.keys(QemuImgSchema.shape).map((k) => `qemuImg.${k}`),
    ...Object.keys(ImageServiceSchema.shape).map((k) => `imageService.${k}`),
    ...[
      'authUrl',
      'username',
      'password',
      'userDomainName',
      'userDomainId',
      'projectName',
      'projectId',
      'projectDomainName',
      'projectDomainId',
    ].map((k) => `imageService.auth.${k}`),
    ...Object.keys(OciSchema.shape).map((k) => `oci.${k}`),
    ...Object.keys(OciPlatformSchema.shape).map((k) => `oci.platform.${k}`),
    ...Object.keys(OciRegistrySchema.shape).map((k) => `oci.registries[].${k}`),
    ...['url', 'sentinels', 'name', 'cluster', 'username', 'password', 'db', 'tls', 'prefix'].map(
      (k) => `redis.${k}`,
    ),
    ...Object.keys(PeersSchema.shape).map((k) => `peers.${k}`),
  ];
  for (const key of keys) expect(readme).toMatch(row(key));
});

test('the README documents every environment variable', () => {
  for (const { name, description } of ENV_VARIABLES) {
    expect(readme).toMatch(row(name));
    expect(description.length).toBeGreaterThan(10);
  }
});

test("the README's error example is what a user sees", () => {
  const dir = tmpDir();
  const file = path.join(dir, 'host.yaml');
  fs.writeFileSync(
    file,
    [
      'caches:',
      '  - name: instance',
      '    masterDir: /m/a',
      '    cacheSize: abc',
      '  - name: tftp',
      '    masterDir: /m/b',
      '  - name: instance',
      '    masterDir: /m/c',
      'verifyTls: false',
      '',
    ].join('\n'),
  );
  const err = configError(() => loadConfig({ file, env: { IMAGECACHE_DOWNLOAD_CONCURRENCY: 'many' } }));
  const shown = err.message.replace(file, '/etc/imagecache/host.yaml');
  const indented = shown
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  expect(readme).toContain(indented);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the README's example configuration loads, credentials bound to their origins", () => {
  const example = /## Example\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(example).toBeDefined();
  const dir = tmpDir();
  const file = path.join(dir, 'host.yaml');
  fs.writeFileSync(file, example!);
  const c = loadConfig({ file, env: {} });
  expect(c.http.auth?.origins).toEqual(['https://images.example']);
  expect(c.caches.find((x) => x.auth)?.auth?.origins).toEqual(['https://kernels.example']);
  expect(c.oci.allowedTokenRealms).toEqual(['https://auth.registry.example']);
  fs.rmSync(dir, { recursive: true, force: true });
});
