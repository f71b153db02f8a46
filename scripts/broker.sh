#!/usr/bin/env bash
# Runs a local Tansu broker (Kafka-compatible, in-memory storage) for tests and demos.
#
#   scripts/broker.sh start [--port N]   start on a free loopback port (or N); print "127.0.0.1:PORT" on stdout
#   scripts/broker.sh stop               TERM, wait, KILL after a bound
#   scripts/broker.sh status             print the address and exit 0 when running, exit 1 otherwise
#
# State (pid, address, log) lives in $MINIRBT_BROKER_STATE (default: $MINIRBT_DEPS/run). Only the bootstrap
# address goes to stdout so callers can write `export MINIRBT_TEST_BROKERS=$(scripts/broker.sh start)`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"

state_dir="${MINIRBT_BROKER_STATE:-$MINIRBT_DEPS/run}"
pid_file="$state_dir/broker.pid"
addr_file="$state_dir/broker.addr"
log_file="$state_dir/broker.log"
tansu_bin="${TANSU_BIN:-$MINIRBT_DEPS/bin/tansu}"
start_timeout_s=20
stop_timeout_s=3  # Tansu can ignore TERM; its memory storage has nothing to flush, so KILL soon

say() { printf '[broker] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid that now belongs to something else.
  grep -q tansu "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Succeeds when the broker answers a Kafka ApiVersions (v0) request with a well-formed response, which
# proves more than an open port: the listener is up and the protocol handler is serving.
answers_api_versions() {
  python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        client = b"minirbt-probe"
        body = struct.pack(">hhih", 18, 0, 7, len(client)) + client  # ApiVersions v0, correlation id 7
        s.sendall(struct.pack(">i", len(body)) + body)
        s.settimeout(2.0)
        header = s.recv(8)
        size, correlation = struct.unpack(">ii", header)
        sys.exit(0 if size > 4 and correlation == 7 else 1)
except Exception:
    sys.exit(1)
PY
}

start() {
  local port=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port="${2:?--port needs a number}"; shift 2 ;;
      *) die "unknown option for start: $1" ;;
    esac
  done
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"
    cat "$addr_file"
    return 0
  fi
  [ -x "$tansu_bin" ] || die "tansu not found at $tansu_bin (run scripts/setup.sh)"
  mkdir -p "$state_dir"
  [ -n "$port" ] || port="$(free_port)"
  local address="127.0.0.1:$port"

  # setsid detaches the broker from the caller's process group so a Ctrl-C in the caller's terminal
  # does not kill it behind the state file's back; `stop` is the way to end it.
  setsid "$tansu_bin" broker \
      --listener-url "tcp://$address" \
      --advertised-listener-url "tcp://$address" \
      --storage-engine "memory://tansu/" \
      >"$log_file" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pid_file"

  local deadline=$((SECONDS + start_timeout_s))
  until answers_api_versions "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      die "tansu exited during start-up; last log lines:$(printf '\n'; tail -n 20 "$log_file")"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      die "tansu did not answer ApiVersions on $address within ${start_timeout_s}s (log: $log_file)"
    fi
    sleep 0.2
  done
  echo "$address" >"$addr_file"
  say "tansu running (pid $pid) on $address; log: $log_file"
  echo "$address"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    say "not running"
    rm -f "$pid_file" "$addr_file"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout_s))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "pid $pid ignored TERM for ${stop_timeout_s}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pid_file" "$addr_file"
  say "stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    say "running (pid $pid)"
    cat "$addr_file"
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start [--port N] | stop | status" ;;
esac
