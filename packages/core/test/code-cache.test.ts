import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// The loader as the build emits it, run in processes of their own: jest loads modules its own way.
const loader = path.resolve(__dirname, '../dist/code-cache.js');
const engine = path.resolve(__dirname, '../dist/index.js');

let root: string;
let dir: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'code-cache-'));
  dir = path.join(root, 'dist', 'code-cache');
  fs.mkdirSync(path.join(root, 'lib'));
  fs.writeFileSync(path.join(root, 'lib', 'greet.js'), "module.exports = () => 'one';\n");
  // Node's module semantics inside a cached module: relative require, require.resolve, __dirname.
  fs.writeFileSync(
    path.join(root, 'lib', 'main.js'),
    "const greet = require('./greet');\n" +
      "module.exports = { said: greet(), found: require.resolve('./greet'), here: __dirname };\n",
  );
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** Loads lib/main.js in a fresh process with the cache installed (training it when `train`). */
function load(train = false): { said: string; found: string; here: string; used: number; refused: number } {
  const program = `
    const cc = require(${JSON.stringify(loader)});
    cc.installCodeCache(${JSON.stringify(dir)}, ${train ? JSON.stringify(root) : 'undefined'});
    const main = require(${JSON.stringify(path.join(root, 'lib', 'main.js'))});
    console.log(JSON.stringify({ ...main, ...cc.codeCacheStats() }));`;
  const env = { ...process.env, NODE_OPTIONS: '' };
  return JSON.parse(execFileSync(process.execPath, ['-e', program], { env, encoding: 'utf8' })) as ReturnType<
    typeof load
  >;
}

describe('the code cache', () => {
  it('is made by a training run, then used by the next process, with Node’s module semantics intact', () => {
    expect(load(true)).toMatchObject({ said: 'one', used: 0 });
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
      files: Record<string, string>;
    };
    expect(Object.keys(manifest.files).sort()).toEqual(['../../lib/greet.js', '../../lib/main.js']);
    for (const hash of Object.values(manifest.files))
      expect(fs.statSync(path.join(dir, `${hash}.bin`)).size).toBeGreaterThan(0);

    expect(load()).toEqual({
      said: 'one',
      found: path.join(root, 'lib', 'greet.js'),
      here: path.join(root, 'lib'),
      used: 2,
      refused: 0,
    });
  });

  it('never runs a cache made from other text, even of the same length (V8 checks only the length)', () => {
    load(true);
    fs.writeFileSync(path.join(root, 'lib', 'greet.js'), "module.exports = () => 'two';\n");
    expect(load()).toMatchObject({ said: 'two', used: 1, refused: 1 });
  });

  it('compiles a module from its text when its cache is damaged', () => {
    load(true);
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.bin'))) {
      fs.writeFileSync(path.join(dir, f), Buffer.alloc(64, 1));
    }
    expect(load()).toMatchObject({ said: 'one', used: 0, refused: 2 });
  });

  it('leaves alone what it was not made for: no manifest, nothing installed', () => {
    expect(load()).toMatchObject({ said: 'one', used: 0, refused: 0 });
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('is what the built engine loads with: every module it lists comes from its cache', () => {
    const program = `console.log(JSON.stringify(require(${JSON.stringify(engine)}).codeCacheStats()))`;
    const env = { ...process.env, NODE_OPTIONS: '' };
    const stats = JSON.parse(execFileSync(process.execPath, ['-e', program], { env, encoding: 'utf8' })) as {
      used: number;
      refused: number;
    };
    expect(stats.refused).toBe(0);
    expect(stats.used).toBeGreaterThan(40);
  });
});
