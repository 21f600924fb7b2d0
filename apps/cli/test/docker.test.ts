import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, readConfigFile } from '@imagecache/config';
import { REPO } from './run-cli';

/**
 * docker/ can't be built or run here (no Docker engine): its least-privilege properties are checked on the files
 * themselves (issue 9): a non-root user owning the master folders, a HEALTHCHECK, a runtime image of built code and
 * production dependencies only, and the board's credentials given to the API's container only.
 */
const DOCKER = path.join(REPO, 'docker');
const dockerfile = fs.readFileSync(path.join(DOCKER, 'Dockerfile'), 'utf8');

/** Instructions (continuation lines joined, comments dropped) of the Dockerfile's stages, by stage. */
function stages(text: string): string[][] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: string[][] = [];
  for (const l of lines) {
    if (/^FROM\s/i.test(l)) out.push([]);
    out.at(-1)?.push(l);
  }
  return out;
}
const runtime = stages(dockerfile).at(-1)!;
const instr = (name: string) => runtime.filter((l) => new RegExp(`^${name}\\s`, 'i').test(l));

type Service = {
  env_file?: string | string[];
  environment?: Record<string, string> | string[];
  user?: string;
  privileged?: boolean;
  cap_add?: string[];
};
const compose = readConfigFile(path.join(DOCKER, 'compose.yaml')).data as {
  services: Record<string, Service>;
};
const envFiles = (s: Service) => (s.env_file === undefined ? [] : [s.env_file].flat());
const envText = (s: Service) =>
  envFiles(s)
    .map((f) => {
      const example = path.join(DOCKER, `${f}.example`);
      return fs.existsSync(example) ? fs.readFileSync(example, 'utf8') : '';
    })
    .join('\n') + JSON.stringify(s.environment ?? {});

describe('docker/Dockerfile', () => {
  it('runs as a non-root user from the runtime stage on', () => {
    const users = instr('USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.split(/\s+/)[1]!.split(':')[0]!;
    expect(['root', '0']).not.toContain(user);
    const entry = runtime.findIndex((l) => /^ENTRYPOINT\s/i.test(l));
    expect(runtime.indexOf(users.at(-1)!)).toBeLessThan(entry);
  });

  it("gives that user the master folders of docker/imagecache.yaml, and nothing of the code's", () => {
    const user = instr('USER').at(-1)!.split(/\s+/)[1]!.split(':')[0]!;
    const chowns = instr('RUN')
      .join(' ')
      .match(new RegExp(`chown -R ${user}(:\\S+)? (\\S+)`, 'g'));
    const owned = (chowns ?? []).map((c) => c.split(' ').at(-1)!);
    const config = loadConfig({ file: path.join(DOCKER, 'imagecache.yaml'), env: {} });
    for (const cache of config.caches) {
      expect(owned.some((dir) => cache.masterDir === dir || cache.masterDir.startsWith(`${dir}/`))).toBe(
        true,
      );
    }
    for (const copy of instr('COPY')) expect(copy).not.toMatch(new RegExp(`--chown=${user}`));
  });

  it('has a HEALTHCHECK that asks a /healthz', () => {
    const checks = instr('HEALTHCHECK');
    expect(checks).toHaveLength(1);
    expect(checks[0]).toMatch(/CMD/);
    expect(dockerfile).toMatch(/HEALTHCHECK_URL=http:\/\/127\.0\.0\.1:9101\/healthz/);
  });

  it('ships built code and production dependencies only: no sources, no tests', () => {
    const copies = instr('COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      expect(copy).toMatch(/--from=build\b/); // nothing from the build context itself
      expect(copy).not.toMatch(/\b(test|tests|src|packages|apps)\b/);
    }
    const build = stages(dockerfile).find((s) => s.some((l) => /AS build$/i.test(l)))!;
    const deployed = build.find((l) => /pnpm .*deploy/.test(l));
    expect(deployed).toMatch(/--prod\b/);
    expect(copies.some((c) => c.includes(deployed!.split(/\s+/).at(-1)!))).toBe(true);
    for (const dir of ['apps', 'packages']) {
      for (const pkg of fs.readdirSync(path.join(REPO, dir))) {
        const file = path.join(REPO, dir, pkg, 'package.json');
        if (!fs.existsSync(file)) continue; // not a workspace package (the Python client)
        const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
        // What deploy copies of a workspace package is its `files`: dist only.
        if (pkg !== 'testing') expect(manifest.files).toEqual(['dist']);
      }
    }
  });
});

describe('docker/compose.yaml', () => {
  const { services } = compose;

  it('gives the board credentials to the API container only', () => {
    expect(envText(services.api!)).toMatch(/IMAGECACHE_BOARD_PASSWORD=/);
    for (const [name, service] of Object.entries(services)) {
      if (name === 'api') continue;
      expect(envText(service)).not.toMatch(/IMAGECACHE_BOARD_/);
      expect(envFiles(service)).not.toContain('board.env');
    }
    const ignored = fs.readFileSync(path.join(DOCKER, 'Dockerfile.dockerignore'), 'utf8');
    expect(ignored).toMatch(/^docker\/board\.env$/m);
  });

  it("leaves every imagecache container the image's user, unprivileged", () => {
    for (const [name, service] of Object.entries(services)) {
      expect([name, service.user]).not.toEqual([name, expect.stringMatching(/^(root|0)(:|$)/)]);
      expect(service.privileged ?? false).toBe(false);
      expect(service.cap_add ?? []).toEqual([]);
    }
    expect(services.api!.user).toBeUndefined();
    expect(services.worker!.user).toBeUndefined();
  });
});
