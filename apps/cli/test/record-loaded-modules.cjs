// Loaded with NODE_OPTIONS=--require by startup.test.ts: writes, as the process exits, the files of every module
// it loaded (require's cache) and Node's own public modules it loaded (as `node:NAME`) to the file named by
// IMAGECACHE_TEST_LOADED_MODULES.
'use strict';
const fs = require('node:fs');

const out = process.env.IMAGECACHE_TEST_LOADED_MODULES;
if (out) {
  process.on('exit', () => {
    const builtins = process.moduleLoadList
      .filter((m) => m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/'))
      .map((m) => `node:${m.slice('NativeModule '.length)}`);
    fs.writeFileSync(out, JSON.stringify([...Object.keys(require.cache), ...builtins]));
  });
}
