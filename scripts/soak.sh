#!/usr/bin/env bash
# The bounded soak, a longer check than the test command (README): N events (default 100,000) of good and
# bad inputs through a release build of `minirbt-stream run` with 2 shards, its RSS sampled every second.
# It prints sent, delivered, lost, duplicates, dead letters, events/s and RSS per tenth of the run, and
# fails if any event is lost, doubled or of the wrong kind, or if RSS grows more than the test's bound.
#   bash scripts/soak.sh [EVENTS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
events="${1:-100000}"

bash scripts/setup.sh
# One product per invocation: `swift build` keeps only the last of several --product options.
for product in minirbt-stream minirbt-admin; do
  swift build -c release --scratch-path .build-perf --product "$product"
done
swift build --build-tests
MINIRBT_E2E_BIN_DIR="$(swift build -c release --scratch-path .build-perf --show-bin-path)" \
MINIRBT_SOAK_EVENTS="$events" swift test --skip-build --filter SoakTests
