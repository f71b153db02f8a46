#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds release binaries, starts a local broker,
# runs `minirbt-stream run` with the demo model, streams the shared dev reviews through it and shows a live
# summary (events/s, latency, label counts, accuracy) and a few enriched results. Everything it started is
# stopped on exit.
#
#   scripts/demo.sh [--events N] [--shards N] [--model DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

events=0
shards=2
model="../shared/models/minirbt-h256-chnsenticorp/v2"
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--events N] [--shards N] [--model DIR]" >&2; exit 2 ;;
  esac
done
[ -f "$model/config.json" ] || { echo "demo: no checkpoint at $model (see ../shared/models/README.md)" >&2; exit 1; }

bash scripts/setup.sh
echo "[demo] building release binaries (the first build takes a few minutes)"
swift build -c release --product minirbt-stream >&2
swift build -c release --product minirbt-demo >&2
bin="$(swift build -c release --show-bin-path)"

export MINIRBT_BROKER_STATE="$(mktemp -d)"
work="$MINIRBT_BROKER_STATE"
service_pid=""
cleanup() {
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  bash scripts/broker.sh stop || true
}
trap cleanup EXIT
brokers="$(bash scripts/broker.sh start)"
echo "[demo] broker at $brokers"

# Topics first, so the service's group subscription finds them.
"$bin/minirbt-demo" --brokers "$brokers" --create-only

metrics_port="${MINIRBT_METRICS_PORT:-9464}"
"$bin/minirbt-stream" run --brokers "$brokers" --group minirbt-demo \
  --input-topic reviews --output-topic reviews-sentiment --dlq-topic reviews-dead-letters \
  --model "$model" --shards "$shards" --metrics-port "$metrics_port" >"$work/service.log" 2>&1 &
service_pid=$!
echo "[demo] minirbt-stream run started (pid $service_pid, log $work/service.log, metrics :$metrics_port/metrics)"

"$bin/minirbt-demo" --brokers "$brokers" --input ../shared/data/chnsenticorp/dev.jsonl --events "$events"

echo "[demo] service metrics:"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null \
  | grep -E '^minirbt_(events_consumed|results_produced|dead_letters)_total|^minirbt_model_info' || true
echo "[demo] stopping the service (SIGTERM: drain, commit, leave the group)"
kill -TERM "$service_pid"
wait "$service_pid" && echo "[demo] service exited cleanly"
service_pid=""
tail -n 3 "$work/service.log"
