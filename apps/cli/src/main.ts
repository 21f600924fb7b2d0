#!/usr/bin/env node
import { OperationAborted } from '@imagecache/errors';
import { run } from './program';

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  // Stays installed (not `once`): proper-lockfile's signal-exit, loaded with the engine, re-raises a signal that
  // has no listener but its own, which would kill a worker in the middle of its graceful shutdown. A second
  // signal ends the process at once.
  process.on(sig, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new OperationAborted(`received ${sig}`));
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
