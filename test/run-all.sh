#!/usr/bin/env bash
# The whole test suite: the README's test command (`npm test`) runs this.
# It installs what it needs (system packages via apt-get, Node-RED 5 with its
# Node 22 under test/nr5), then runs every suite and fails when any fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
# The firmware's host tests and cross-compile check (Debian packages; PlatformIO is not needed), and e2fsprogs
# for the storage fault tests (they make an ext4 file system of their own), PostgreSQL and HAProxy for the shared
# backend and the cluster, Mosquitto for the MQTT transport (the tests start throwaway instances of their own;
# none is assumed running).
for pkg in postgresql haproxy mosquitto libmosquitto-dev e2fsprogs g++ make libbearssl-dev doctest-dev nlohmann-json3-dev gcc-xtensa-lx106 binutils-xtensa-lx106 picolibc-xtensa-lx106-elf; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  # The packages' own services (PostgreSQL's main cluster, HAProxy) are not started: the tests start private
  # instances of their own. (policy-rc.d is Debian's switch for that; one already there is left alone.)
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [ -n "$policy" ]; then rm -f "$policy"; fi
fi

# Node-RED 5 needs Node >= 22.9; both come from the npm registry into test/nr5.
if [ ! -x test/nr5/node_modules/.bin/node ] || [ ! -f test/nr5/node_modules/node-red/lib/red.js ]; then
  echo "installing Node-RED 5 and Node 22 into test/nr5"
  (cd test/nr5 && npm ci --no-audit --no-fund --loglevel=error)
fi

MOCHA=node_modules/mocha/bin/mocha.js
PASSED=0
FAILED=0
SUITE_LOG=$(mktemp)
trap 'rm -f "$SUITE_LOG"' EXIT

# Runs one mocha suite (any command line), shows its output and adds up its counts.
suite() {
  local status=0
  "$@" 2>&1 | tee "$SUITE_LOG" || status=$?
  local p f
  p=$(grep -Eo '^ +[0-9]+ passing' "$SUITE_LOG" | grep -Eo '[0-9]+' | tail -1 || true)
  f=$(grep -Eo '^ +[0-9]+ failing' "$SUITE_LOG" | grep -Eo '[0-9]+' | tail -1 || true)
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
  if [ "$status" -ne 0 ]; then
    echo "Summary: $PASSED passed, $((FAILED > 0 ? FAILED : 1)) failed"
    exit "$status"
  fi
}

echo "== lib unit tests and node tests on Node-RED 4 ($(node --version))"
suite node "$MOCHA" 'test/lib/**/*.test.js' 'test/nodes/**/*.test.js'

echo "== fuzzing: a seeded run of about 10,000 cases (npm run fuzz runs 100,000)"
suite node "$MOCHA" 'test/fuzz/**/*.test.js'

echo "== end-to-end: npm start, the simulator, real HTTP on loopback; faults and crash rounds"
suite node "$MOCHA" 'test/e2e/**/*.test.js'

echo "== scale-out: npm run cluster, 3 instances behind HAProxy on a throwaway PostgreSQL (about 2 minutes)"
suite node "$MOCHA" 'test/cluster/**/*.test.js'

echo "== firmware: host tests (ASan/UBSan), ESP8266 cross-compile, interop with the nodes and the backend"
suite node "$MOCHA" 'test/firmware/**/*.test.js'

echo "== benchmarks: a few seconds each (npm run bench runs them in full)"
suite node "$MOCHA" 'test/bench/**/*.test.js'

echo "== Devices sidebar in a real browser (Debian chromium + playwright-core)"
command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
suite node "$MOCHA" 'test/ui/**/*.test.js'

echo "== node tests on Node-RED 5 ($(test/nr5/node_modules/.bin/node --version))"
suite env E2EE_NODE_RED=test/nr5/node_modules/node-red/lib/red.js \
  test/nr5/node_modules/.bin/node "$MOCHA" 'test/nodes/**/*.test.js'

echo "== Devices sidebar and the user-flow examples on Node-RED 5 (npm start with Node-RED 5 on Node 22)"
suite env E2EE_BACKEND_NODE_RED=test/nr5/node_modules/node-red node "$MOCHA" 'test/ui/**/*.test.js' test/e2e/user-flows.test.js

echo "Summary: $PASSED passed, $FAILED failed"
