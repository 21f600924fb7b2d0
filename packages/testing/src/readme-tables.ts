import * as fs from 'node:fs';
import * as path from 'node:path';

/** The root README: the public contract that tests hold the code to. */
export function readRootReadme(): string {
  return fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
}

/**
 * The error codes of the first table after `heading` whose first column is `status` (README "Exit status" and
 * "HTTP API"), each with the statuses its rows give it. A cell names codes in backquotes, in upper case; a status
 * cell may hold several (`413, 415`).
 */
export function statusTable(readme: string, heading: string): Map<string, number[]> {
  const lines = readme.split('\n');
  let i = lines.findIndex((l) => l.trim() === heading);
  if (i < 0) throw new Error(`the README has no heading ${heading}`);
  while (i < lines.length && !/^\|\s*status\s*\|/.test(lines[i]!)) i++;
  const out = new Map<string, number[]>();
  for (i++; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const [status, codes] = lines[i]!.split('|')
      .slice(1, 3)
      .map((c) => c.trim());
    if (/^-+$/.test(status!)) continue;
    const statuses = status!.split(',').map((s) => Number(s.trim()));
    for (const m of codes!.matchAll(/`([A-Z][A-Z_]+)`/g))
      out.set(m[1]!, [...(out.get(m[1]!) ?? []), ...statuses]);
  }
  if (out.size === 0) throw new Error(`no status table after ${heading}`);
  return out;
}
