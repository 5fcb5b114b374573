#!/usr/bin/env bash
# lightmamba perplexity --base / --save-base / --load-base (the comparison with the float model) on
# the tiny model and the first 8 kB of WikiText-2 test: KL(float || float) = 0 with 100 % agreement;
# KL grows as bits shrink (W8A8 < W4A8 < W4A4); a saved base gives the same numbers as the base run
# alongside; bad input (options, files: missing, truncated, corrupt, another text) gets one error line.
. "$(dirname "$0")/cli_setup.sh"

check() { if awk "BEGIN { exit !($2) }"; then echo "ok: $1"; else echo "FAIL: $1 ($2)"; fail=1; fi; }
compare() { "$BIN" perplexity -f "$tmp/text.txt" --ctx 512 --threads 2 --json "$@" 2>"$tmp/err" || cat "$tmp/err"; }

head -c 8000 "$ROOT/data/wikitext2_test.txt" >"$tmp/text.txt"

# --- the float model against itself: KL exactly 0, every argmax agrees, no change in ppl ---
out=$(compare -m "$MODEL" --base "$MODEL")
echo "float vs float: $out"
check "KL(float || float) = 0" "$(json_number kl_mean "$out") == 0 && $(json_number kl_max "$out") == 0"
check "top-1 agreement 100 %" "$(json_number top1_agreement "$out") == 1"
check "ppl delta 0" "$(json_number ppl_delta "$out") == 0 && $(json_number base_ppl "$out") == $(json_number ppl "$out")"

# --- KL grows as bits shrink (lightmamba, round to nearest) ---
declare -A kl
for wa in "8 8" "4 8" "4 4"; do
    set -- $wa
    "$BIN" quantize -m "$MODEL" -o "$tmp/w$1a$2.lmq" --wbits "$1" --abits "$2" --threads 2 >/dev/null 2>&1 ||
        { echo "FAIL: quantize W$1A$2"; fail=1; }
    out=$(compare -m "$tmp/w$1a$2.lmq" --base "$MODEL")
    kl[$1$2]=$(json_number kl_mean "$out")
    echo "W$1A$2 vs float: $out"
    check "W$1A$2: median <= p99 <= max, agreement in (0, 1)" "$(json_number kl_median "$out") <= $(json_number kl_p99 "$out") && $(json_number kl_p99 "$out") <= $(json_number kl_max "$out") && $(json_number top1_agreement "$out") > 0 && $(json_number top1_agreement "$out") < 1"
done
check "KL W8A8 ${kl[88]} < W4A8 ${kl[48]} < W4A4 ${kl[44]}" "0 < ${kl[88]} && ${kl[88]} < ${kl[48]} && ${kl[48]} < ${kl[44]}"

# --- a saved base gives the numbers of the base run alongside ---
live=$(compare -m "$tmp/w4a4.lmq" --base "$MODEL" --save-base "$tmp/base.lmb")
saved=$(compare -m "$tmp/w4a4.lmq" --load-base "$tmp/base.lmb")
strip() { sed 's/"seconds": [0-9.]*, //' <<<"$1"; }
if [ -n "$live" ] && [ "$(strip "$live")" = "$(strip "$saved")" ]; then
    echo "ok: --load-base reproduces --base: $saved"
else
    echo "FAIL: --load-base differs from --base:"; echo "$live"; echo "$saved"; fail=1
fi
out=$(compare -m "$MODEL" --load-base "$tmp/base.lmb")
check "KL(saved float || float) = 0" "$(json_number kl_max "$out") == 0 && $(json_number top1_agreement "$out") == 1"
# the float model saved on its own (no --base) is the same file, and prints its perplexity
out=$("$BIN" perplexity -m "$MODEL" -f "$tmp/text.txt" --ctx 512 --threads 1 --json --save-base "$tmp/alone.lmb")
if cmp -s "$tmp/alone.lmb" "$tmp/base.lmb" && [ "$(json_number ppl "$out")" = "$(json_number base_ppl "$saved")" ]; then
    echo "ok: --save-base without --base saves the same base"
else
    echo "FAIL: --save-base without --base: $out"; fail=1
fi
# prefill products do not depend on the thread count: read with 1 thread, the same numbers
one=$("$BIN" perplexity -f "$tmp/text.txt" --ctx 512 --threads 1 --json -m "$tmp/w4a4.lmq" --load-base "$tmp/base.lmb")
[ "$(strip "$one")" = "$(strip "$saved")" ] && echo "ok: --threads 1 reproduces --threads 2" ||
    { echo "FAIL: --threads 1 differs:"; echo "$one"; echo "$saved"; fail=1; }
"$BIN" perplexity -m "$tmp/w4a4.lmq" -f "$tmp/text.txt" --ctx 512 --threads 2 --load-base "$tmp/base.lmb" >"$tmp/out.txt" 2>&1
grep -q '^KL(base || model) mean [0-9.e-]*, median .* top-1 agreement [0-9.]* %$' "$tmp/out.txt" &&
    grep -q '^base perplexity [0-9.]*: change +[0-9.]* +- [0-9.]*' "$tmp/out.txt" ||
    { echo "FAIL: text output:"; cat "$tmp/out.txt"; fail=1; }

# --- bad input ---
size=$(stat -c %s "$tmp/base.lmb")
head -c $((size - 100)) "$tmp/base.lmb" >"$tmp/truncated.lmb"
cp "$tmp/base.lmb" "$tmp/corrupt.lmb"
printf '\x55' | dd of="$tmp/corrupt.lmb" bs=1 seek=$((size - 7)) conv=notrunc 2>/dev/null
cp "$tmp/base.lmb" "$tmp/magic.lmb"
printf 'X' | dd of="$tmp/magic.lmb" bs=1 seek=0 conv=notrunc 2>/dev/null
cp "$tmp/base.lmb" "$tmp/version.lmb"
printf '\x07' | dd of="$tmp/version.lmb" bs=1 seek=8 conv=notrunc 2>/dev/null
head -c 9000 "$ROOT/data/wikitext2_test.txt" >"$tmp/other.txt"
P=(perplexity -m "$tmp/w4a4.lmq" -f "$tmp/text.txt" --ctx 512)
expect_error_matching "--save-base and --load-base" "exclude" "${P[@]}" --save-base "$tmp/x.lmb" --load-base "$tmp/base.lmb"
expect_error_matching "--base and --load-base" "exclude" "${P[@]}" --base "$MODEL" --load-base "$tmp/base.lmb"
expect_error "--base: missing model" "${P[@]}" --base "$tmp/nope"
expect_error_matching "--load-base: missing file" "nope.lmb" "${P[@]}" --load-base "$tmp/nope.lmb"
expect_error "--load-base: a directory" "${P[@]}" --load-base "$tmp"
expect_error_matching "--load-base: truncated" "truncated" "${P[@]}" --load-base "$tmp/truncated.lmb"
expect_error_matching "--load-base: corrupt byte" "checksum" "${P[@]}" --load-base "$tmp/corrupt.lmb"
expect_error_matching "--load-base: not a saved base" "saved base file (no LMBASE" "${P[@]}" --load-base "$tmp/magic.lmb"
expect_error_matching "--load-base: unknown version" "version 7" "${P[@]}" --load-base "$tmp/version.lmb"
expect_error_matching "--load-base: a quantized model file" "saved base file (no LMBASE" "${P[@]}" --load-base "$tmp/w4a4.lmq"
expect_error_matching "--load-base: another text" "another text" perplexity -m "$tmp/w4a4.lmq" -f "$tmp/other.txt" --ctx 512 --load-base "$tmp/base.lmb"
expect_error_matching "--load-base: another --ctx" "ctx 512, not 256" perplexity -m "$tmp/w4a4.lmq" -f "$tmp/text.txt" --ctx 256 --load-base "$tmp/base.lmb"
expect_error "--save-base: unwritable path" "${P[@]}" --base "$MODEL" --save-base "$tmp/no/such/dir/base.lmb"
ls "$tmp/no" >/dev/null 2>&1 && { echo "FAIL: --save-base left a directory"; fail=1; }
printf 'Hello' >"$tmp/one_token.txt"
expect_error "--save-base: nothing to score, no file left" perplexity -m "$MODEL" -f "$tmp/one_token.txt" --save-base "$tmp/partial.lmb"
ls "$tmp"/partial.lmb* >/dev/null 2>&1 && { echo "FAIL: a partial saved base was left"; fail=1; }
exit $fail
