#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, ASan + UBSan, into build-fuzz/) and runs
# each for N seconds, one after the other; prints per harness the executions, the edges covered
# and features (libFuzzer's `cov:` and `ft:`) and the corpus size, and exits non-zero on any
# finding (crash, sanitizer report, leak, timeout, out-of-memory). docs/robustness.md has the
# campaign and what it found.
#   bash scripts/fuzz.sh [--seconds N] [--runs N] [--only REGEX]
# --runs stops a harness after N executions if that comes before the N seconds (campaigns).
# The corpora grow in build-fuzz/corpus/HARNESS/ from run to run (seeded by fuzz_seeds from the
# repository's files); a finding's input is written to build-fuzz/findings/HARNESS/. To keep one
# as a regression test: fix the loader, then copy the input to tests/fuzz/regressions/HARNESS/.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=60; RUNS=-1; ONLY=.
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: bash scripts/fuzz.sh [--seconds N] [--runs N] [--only REGEX]" >&2; exit 2 ;;
  esac
done

BUILD=$(bash scripts/setup.sh --fuzz | tail -n 1)
rm -rf "$BUILD/seeds"
"$BUILD/tests/fuzz/fuzz_seeds" "$BUILD/seeds"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
printf '%-22s %12s %8s %6s %6s %7s  %s\n' harness executions exec/s cov ft corpus result
for src in tests/fuzz/fuzz_*.c; do
  h=$(basename "$src" .c)
  echo "$h" | grep -Eq -- "$ONLY" || continue
  base=${h%_sim}  # fuzz_X_sim shares fuzz_X's seeds
  corpus=$BUILD/corpus/$h findings=$BUILD/findings/$h log=$BUILD/logs/$h.log
  rm -rf "$findings"  # this run's findings only (copy one away to keep it)
  mkdir -p "$corpus" "$findings" "$BUILD/logs" "$BUILD/seeds/$base"
  inputs=("$corpus" "$BUILD/seeds/$base")
  [ -d "tests/fuzz/regressions/$h" ] && inputs+=("tests/fuzz/regressions/$h")
  # Its own dictionary, else that of the name less its last _part (fuzz_gguf_model: fuzz_gguf.dict).
  dict=()
  for d in "tests/fuzz/$h.dict" "tests/fuzz/${h%_*}.dict"; do
    [ -f "$d" ] && { dict=(-dict="$d"); break; }
  done
  rc=0
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory (a finding if passed).
  timeout $((SECONDS_EACH + 300)) "$BUILD/tests/fuzz/$h" -max_total_time="$SECONDS_EACH" -runs="$RUNS" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" "${inputs[@]}" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  result=ok
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$findings")" ]; then
    result="FINDING (exit $rc; log $log, inputs in $findings/)"
    status=1
  fi
  printf '%-22s %12s %8s %6s %6s %7s  %s\n' "$h" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
  if [ "$result" != ok ]; then grep -E 'ERROR|SUMMARY|fuzz: |runtime error' "$log" | head -n 5 | sed 's/^/    /'; fi
done
exit $status
