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

results="$(mktemp -d)/jest.json"
status=0
pnpm exec jest --ci --json --outputFile="$results" "$@" || status=$?
node -e '
  const r = require(process.argv[1]);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed` +
    (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' "$results" || echo "0 passed, 1 failed"
exit $status
