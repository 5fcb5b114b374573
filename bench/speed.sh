#!/usr/bin/env bash
# Prefill and decode speed (tokens/s) of `lightmamba generate` on the shared models:
# mamba2-tiny (bundled) and ../shared/models/mamba2-small (when present). The prompt is the
# first PROMPT_TOKENS (default 512) tokens of WikiText-2 test; GEN (default 128) tokens are
# generated greedily; each figure is the best of RUNS (default 3) runs.
#   bash bench/speed.sh [THREADS]      THREADS: worker threads (default: all cores)
# Uses $LM_BIN if set, else build/lightmamba (built by scripts/setup.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-0}
PROMPT_TOKENS=${PROMPT_TOKENS:-512}
GEN=${GEN:-128}
RUNS=${RUNS:-3}
BIN=${LM_BIN:-build/lightmamba}
[ -x "$BIN" ] || BIN=$(bash scripts/setup.sh | tail -n 1)/lightmamba
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the prompt: the first PROMPT_TOKENS ids of the text, decoded back to text
"$BIN" tokenize -f data/wikitext2_test.txt -o "$tmp/all.i32" 2>/dev/null
head -c $((4 * PROMPT_TOKENS)) "$tmp/all.i32" >"$tmp/prompt.i32"
"$BIN" tokenize --decode -f "$tmp/prompt.i32" -o "$tmp/prompt.txt" 2>/dev/null

field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" <<<"$2"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

echo "lightmamba generate: prompt of ~$PROMPT_TOKENS tokens, $GEN tokens generated (greedy), threads: ${THREADS/#0/all ($(nproc))}, best of $RUNS"
printf '%-14s %14s %16s %14s %16s\n' model "prompt tokens" "prefill tok/s" "decode tokens" "decode tok/s"
for model in models/mamba2-tiny ../shared/models/mamba2-small; do
    if [ ! -d "$model" ]; then
        printf '%-14s (not found: %s)\n' "$(basename "$model")" "$model"
        continue
    fi
    best_prefill=0 best_decode=0
    for _ in $(seq "$RUNS"); do
        "$BIN" generate -m "$model" -f "$tmp/prompt.txt" -n "$GEN" --temp 0 --threads "$THREADS" --json >/dev/null 2>"$tmp/err"
        stats=$(tail -n 1 "$tmp/err")
        best_prefill=$(max "$best_prefill" "$(field prefill_tokens_per_second "$stats")")
        best_decode=$(max "$best_decode" "$(field decode_tokens_per_second "$stats")")
    done
    printf '%-14s %14s %16.1f %14s %16.1f\n' "$(basename "$model")" "$(field prefill_tokens "$stats")" "$best_prefill" \
        "$(field decode_tokens "$stats")" "$best_decode"
done
