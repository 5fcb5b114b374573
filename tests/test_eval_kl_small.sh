#!/usr/bin/env bash
# KL(float || quantized) grows as bits shrink on ../shared/models/mamba2-small, as on tiny
# (test_eval_kl.sh): W8A8 < W4A8 < W4A4 (lightmamba, round to nearest), on the first 8,000 bytes of
# WikiText-2 test (3,000 under the sanitizer build), the float base saved once and read back.
. "$(dirname "$0")/cli_setup.sh"
MODEL=${LM_SHARED:-/nonexistent}/models/mamba2-small
if [ ! -d "$MODEL" ]; then
    echo "SKIP: needs ../shared/models/mamba2-small beside the checkout (not found)"
    exit 77
fi
head -c "$([ "${LM_SANITIZE:-0}" = 1 ] && echo 3000 || echo 8000)" "$ROOT/data/wikitext2_test.txt" >"$tmp/text.txt"

"$BIN" perplexity -m "$MODEL" -f "$tmp/text.txt" --save-base "$tmp/base.lmb" --threads 2 >/dev/null ||
    { echo "FAIL: saving the float base"; exit 1; }
kl=()
for wa in "8 8" "4 8" "4 4"; do
    set -- $wa
    "$BIN" quantize -m "$MODEL" -o "$tmp/q.lmq" --wbits "$1" --abits "$2" --threads 2 >/dev/null 2>&1 || { echo "FAIL: quantize W$1A$2"; exit 1; }
    out=$("$BIN" perplexity -m "$tmp/q.lmq" -f "$tmp/text.txt" --load-base "$tmp/base.lmb" --threads 2 --json)
    echo "W$1A$2 vs float: $out"
    kl+=("$(json_number kl_mean "$out")")
done
if awk -v a="${kl[0]}" -v b="${kl[1]}" -v c="${kl[2]}" 'BEGIN { exit !(a > 0 && a < b && b < c) }'; then
    echo "ok: KL W8A8 ${kl[0]} < W4A8 ${kl[1]} < W4A4 ${kl[2]}"
else
    echo "FAIL: KL not growing as bits shrink: W8A8 ${kl[0]}, W4A8 ${kl[1]}, W4A4 ${kl[2]}"; exit 1
fi
