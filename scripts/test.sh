#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, checks the deployment files,
# starts one local broker for the whole run, runs every test against it, and stops the broker whatever
# happens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

bash scripts/setup.sh

echo "[test] static checks of docker/ and helm/: helm lint and template, kubernetes-validate, hadolint"
deploy_python="$(bash scripts/deploy-tools.sh)"
"$deploy_python" scripts/check-deploy.py
"$deploy_python" scripts/check-deploy.py --self-test

export MINIRBT_BROKER_STATE="${MINIRBT_BROKER_STATE:-$(mktemp -d)}"
MINIRBT_TEST_BROKERS="$(bash scripts/broker.sh start)"
export MINIRBT_TEST_BROKERS
trap 'bash scripts/broker.sh stop || true' EXIT
echo "[test] broker at $MINIRBT_TEST_BROKERS"

swift build --build-tests "$@"
swift test --skip-build "$@"

# The engine picks its kernels from the CPU at load; the same tests must pass on a lesser one. Capping the
# instruction set emulates one on this machine: AVX-512 without VNNI or BF16 (Skylake-X: the engine's own
# int8 kernel at AVX-512, bf16 served as fp32 because oneDNN would only emulate it), AVX2 (the fast int8
# path without VNNI, bf16 served as fp32) and SSE4.1 (no fast reduced precision at all: every session
# falls back to fp32). A cap above the machine's best level changes nothing.
for cap in AVX512_CORE AVX2 SSE41; do
  echo "[test] precision and engine tests with MINIRBT_MAX_CPU_ISA=$cap"
  MINIRBT_MAX_CPU_ISA=$cap swift test --skip-build --filter 'PrecisionTests|Int8ProductTests|EncoderTests|VectorMathTests|RealModelTests' "$@"
done

# Every parser of outside bytes (events, tokenizer, checkpoints, control messages, manifests, configs)
# under libFuzzer for a bounded time; a crash fails the run and names its input.
bash scripts/fuzz.sh 30
