#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { run } from './program';

// undici parses HEADs and small answers with llhttp, a WebAssembly module (downloads use our own parser). Once it is
// compiled, V8 goes on optimising the whole module on background threads and the process can't exit before that is
// done: about 80 ms of CPU and wall on every call that makes a request (bench/startup.mjs). Baseline code parses a
// response head as well. Set before anything is compiled, so before any module that could load undici.
setFlagsFromString('--liftoff-only');

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  // Stays installed (not `once`): proper-lockfile's signal-exit, loaded later by a miss, re-raises a signal that
  // has no listener but its own, which would kill a worker in the middle of its graceful shutdown. A second
  // signal ends the process at once.
  process.on(sig, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`received ${sig}`));
  });
}
run(process.argv.slice(2), controller.signal).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `imagecache: unexpected failure: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
