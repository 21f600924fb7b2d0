import * as fs from 'node:fs';
import * as path from 'node:path';

/** The CLI's version, from its package.json: read as text, so `--version` loads nothing else. */
export function cliVersion(): string {
  // dist/version.js and src/version.ts both sit one folder below the package's root.
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}
