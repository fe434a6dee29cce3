#!/bin/bash
# The device's seeded chaos test (test/test_e2ee/test_device.cpp) over many seeds: every fault at random while
# commands and rekeys flow. npm test runs one seed of 1,500 steps; this runs SEEDS seeds of STEPS steps.
# usage: chaos.sh [SEEDS=20] [STEPS=5000] [FIRST_SEED=1]
set -eu
cd "$(dirname "$0")/.."
SEEDS=${1:-20}; STEPS=${2:-5000}; FIRST=${3:-1}
make -s build/test_e2ee
for ((s = FIRST; s < FIRST + SEEDS; s++)); do
  if ! out=$(E2EE_CHAOS_SEED=$s E2EE_CHAOS_STEPS=$STEPS ./build/test_e2ee -tc='*chaos*' 2>&1); then
    echo "$out"
    echo "chaos: seed $s failed (E2EE_CHAOS_SEED=$s E2EE_CHAOS_STEPS=$STEPS firmware/build/test_e2ee -tc='*chaos*')"
    exit 1
  fi
done
echo "chaos: $SEEDS seeds of $STEPS steps passed"
