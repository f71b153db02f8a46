#!/usr/bin/env bash
# Builds the libFuzzer targets under Fuzz/ and runs each for a bounded time (Fuzz/README.md).
#
#   bash scripts/fuzz.sh [seconds-per-target] [target...]      (default: 30 seconds, every target)
#
# Each target starts from a copy of Fuzz/Corpus/<target> plus the crash inputs of Fuzz/Regressions/<target>
# (so known crashes are re-run first), and never writes to the committed corpus. Prints executions, coverage
# and crashes per target; exits non-zero if any target crashed, timed out or ran out of memory, naming the
# input that did it (kept under .build-fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

seconds="${1:-30}"
shift || true
all_targets=(event tokenizer safetensors torch pickle control manifest config)
targets=("${@:-${all_targets[@]}}")
scratch=.build-fuzz
work="$scratch/work"
artifacts="$scratch/artifacts"

export MINIRBT_FUZZ=1
mkdir -p "$scratch"
echo "[fuzz] building ${targets[*]} (instrumented, in $scratch)"
for target in "${targets[@]}"; do
    # gold warns about every ASan check symbol it cannot export; only real errors are worth showing.
    if ! swift build -c debug --scratch-path "$scratch" --product "fuzz-$target" > "$scratch/fuzz-build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$scratch/fuzz-build.log" | tail -40
        echo "[fuzz] build of fuzz-$target failed (full log: $scratch.build.log)" >&2
        exit 1
    fi
done
bin="$(swift build -c debug --scratch-path "$scratch" --show-bin-path)"

# The Swift runtime's crash backtracer would race libFuzzer's own handler (and can hang the run).
export SWIFT_BACKTRACE=enable=no
# LeakSanitizer reports Swift globals as leaked (Swift packs pointers with tag bits it cannot see through).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="$work/$target/corpus"
    rm -rf "$work/$target"
    mkdir -p "$corpus" "$artifacts/$target"
    cp Fuzz/Corpus/"$target"/* "$corpus"/ 2>/dev/null || true
    if [ -d "Fuzz/Regressions/$target" ]; then cp Fuzz/Regressions/"$target"/* "$corpus"/ 2>/dev/null || true; fi
    log="$work/$target/fuzz.log"
    echo "[fuzz] fuzz-$target for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
    status=0
    "$bin/fuzz-$target" "$corpus" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -detect_leaks=0 -artifact_prefix="$artifacts/$target/" > "$log" 2>&1 || status=$?
    runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)"
    features="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)"
    corpus_size="$(ls "$corpus" | wc -l)"
    crash="$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -1 || true)"
    if [ "$status" -ne 0 ] || [ -n "$crash" ]; then
        failed+=("$target")
        echo "[fuzz] fuzz-$target FAILED (exit $status); input: ${crash:-none written}; log: $log"
        grep -E "ERROR: |SUMMARY: |Fatal error|Precondition failed|#[0-9]+ 0x.* in .*(MiniRBT|ModelControl|StreamPipeline|Fuzz)" "$log" \
            | head -30 || true
        summary+=("$(printf '%-12s runs=%-9s cov=%-6s ft=%-6s corpus=%-5s CRASH %s' "$target" "${runs:-?}" "${cov:-?}" "${features:-?}" "$corpus_size" "${crash:-?}")")
    else
        summary+=("$(printf '%-12s runs=%-9s cov=%-6s ft=%-6s corpus=%-5s crashes=0' "$target" "${runs:-?}" "${cov:-?}" "${features:-?}" "$corpus_size")")
    fi
done

echo "[fuzz] summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "[fuzz] crashes in: ${failed[*]}; minimise with: $bin/fuzz-<target> -minimize_crash=1 -runs=10000 <input>" >&2
    exit 1
fi
