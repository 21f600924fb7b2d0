#!/usr/bin/env bash
# Installs everything, then runs every test (real HTTP servers, files, hard links, tmpfs mounts).
# Ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# A real Redis for the distributed mode's tests: start one if none answers.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
fi

export TURBO_TELEMETRY_DISABLED=1
pnpm exec tsc -p tsconfig.json
pnpm exec eslint .
pnpm exec prettier --check . --log-level warn

results="$(mktemp -d)"
status=0
# --forceExit: a process a failed suite left behind must not keep jest running; the timeout bounds the rest, so a
# hung run fails here with a reason instead of running into CI's 90 minutes (one did: a suite's set-up failed,
# its tear-down hung, jest never exited).
timeout --kill-after=30s 40m pnpm exec jest --ci --forceExit --json --outputFile="$results/jest.json" "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then echo "jest did not finish within 40 minutes" >&2; fi
# The Python client and Ironic drop-in (packages/client-python): Debian's python3, which has python3-ironic.
/usr/bin/python3 packages/client-python/tests/run.py --json "$results/python.json" || status=$?
node -e '
  const fs = require("node:fs");
  const read = (f) => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return undefined; } };
  const j = read(process.argv[1]);
  const p = read(process.argv[2]);
  // A suite that wrote no results counts as one failure.
  const passed = (j ? j.numPassedTests : 0) + (p ? p.passed : 0);
  const failed = (j ? j.numFailedTests + j.numRuntimeErrorTestSuites : 1) + (p ? p.failed : 1);
  const skipped = (j ? j.numPendingTests : 0) + (p ? p.skipped : 0);
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results/jest.json" "$results/python.json" || echo "0 passed, 1 failed"
exit $status
