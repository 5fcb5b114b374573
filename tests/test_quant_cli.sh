# lightmamba quantize on the bundled tiny model, end to end through the CLI: the quantized
# file works with info, generate and perplexity; W8A8 LightMamba stays within 2 % of the float
# perplexity and W4A4 within a sane bound (on the first 40 kB of WikiText-2 test, ctx 1024), and
# W4A4 with an 8-bit embedding and lm_head (--head 8) within 1 % of W4A4's;
# bad options are refused with one error line and no output file.
set -euo pipefail
: "${LM_BIN:?}" "${LM_ROOT:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model="$LM_ROOT/models/mamba2-tiny"
head -c 40000 "$LM_ROOT/data/wikitext2_test.txt" > "$tmp/text.txt"
fail() { echo "FAIL: $*" >&2; exit 1; }
ppl() { "$LM_BIN" perplexity -m "$1" -f "$tmp/text.txt" --threads 2 --json | sed -n 's/.*"ppl": \([0-9.eE+-]*\).*/\1/p'; }

"$LM_BIN" quantize -m "$model" -o "$tmp/w8a8.lmq" --wbits 8 --abits 8 --threads 2 2> "$tmp/progress.txt" > "$tmp/out.txt"
grep -q "quantize: 4/4" "$tmp/progress.txt" || fail "no progress on stderr"
grep -q "wrote $tmp/w8a8.lmq: lightmamba W8A8" "$tmp/out.txt" || fail "no summary: $(cat "$tmp/out.txt")"
"$LM_BIN" quantize -m "$model" -o "$tmp/w4a4.lmq" --threads 2 2> /dev/null > /dev/null
# SmoothQuant with a short calibration (4 samples of 64 tokens of the bundled text).
"$LM_BIN" quantize -m "$model" -o "$tmp/sq.lmq" --method smoothquant --alpha 0.6 --calib-samples 4 --calib-len 64 \
    --threads 2 2> "$tmp/progress.txt" > /dev/null
grep -q "calibration: 4/4" "$tmp/progress.txt" || fail "no calibration progress"

"$LM_BIN" info -m "$tmp/w8a8.lmq" > "$tmp/info.txt"
grep -q "in_proj.qweight .*Q8" "$tmp/info.txt" || fail "info does not list the Q8 weights"
"$LM_BIN" generate -m "$tmp/w4a4.lmq" -p "The history of the city" -n 8 --temp 0 --threads 2 > "$tmp/gen.txt" 2> /dev/null
[ "$(wc -c < "$tmp/gen.txt")" -gt 24 ] || fail "generate produced nothing"

f=$(ppl "$model"); q8=$(ppl "$tmp/w8a8.lmq"); q4=$(ppl "$tmp/w4a4.lmq"); sq=$(ppl "$tmp/sq.lmq")
echo "ppl on 40 kB: float $f, lightmamba W8A8 $q8, lightmamba W4A4 $q4, smoothquant W4A4 $sq"
awk -v f="$f" -v q="$q8" 'BEGIN { exit !(q > 0 && q < f * 1.02 && q > f * 0.98) }' || fail "W8A8 ppl $q8 not within 2 % of $f"
awk -v f="$f" -v q="$q4" 'BEGIN { exit !(q > 0 && q < f * 1.5) }' || fail "W4A4 ppl $q4 not below 1.5 x $f"
awk -v f="$f" -v q="$sq" 'BEGIN { exit !(q > 0 && q < f * 3) }' || fail "SmoothQuant W4A4 ppl $sq not below 3 x $f"

# Bad input: one error line, non-zero exit, no output file.
expect_error() {
    local want="$1"; shift
    if "$LM_BIN" quantize "$@" > /dev/null 2> "$tmp/err.txt"; then fail "accepted: $*"; fi
    [ "$(wc -l < "$tmp/err.txt")" -eq 1 ] || fail "not one error line for: $*: $(cat "$tmp/err.txt")"
    grep -q -e "$want" "$tmp/err.txt" || fail "error for '$*' lacks '$want': $(cat "$tmp/err.txt")"
    [ ! -e "$tmp/bad.lmq" ] || fail "output file left behind by: $*"
}
expect_error "unknown --method" -m "$model" -o "$tmp/bad.lmq" --method gptq
expect_error "4 or 8" -m "$model" -o "$tmp/bad.lmq" --wbits 6
expect_error "W8A4" -m "$model" -o "$tmp/bad.lmq" --wbits 8 --abits 4
expect_error "alpha" -m "$model" -o "$tmp/bad.lmq" --alpha 1.5
expect_error "-o OUT is required" -m "$model"
expect_error "no such model" -m "$tmp/none" -o "$tmp/bad.lmq"
expect_error "fewer than one sample" -m "$model" -o "$tmp/bad.lmq" --gptq --calib "$tmp/progress.txt"
expect_error "already quantized" -m "$tmp/w4a4.lmq" -o "$tmp/bad.lmq"
expect_error "--act-group '24'" -m "$model" -o "$tmp/bad.lmq" --act-group 24
expect_error "--act-scale 'fp16'" -m "$model" -o "$tmp/bad.lmq" --act-scale fp16
expect_error "pot8.*hardware's activation format" -m "$model" -o "$tmp/bad.lmq" --ssm pot8 --act-group token
expect_error "--head '6': f16, 8 or 4" -m "$model" -o "$tmp/bad.lmq" --head 6
expect_error "--head 'int8': f16, 8 or 4" -m "$model" -o "$tmp/bad.lmq" --head int8
expect_error "--head needs a value" -m "$model" -o "$tmp/bad.lmq" --head
expect_error "--embedding '16': f16, 8 or 4" -m "$model" -o "$tmp/bad.lmq" --head 4 --embedding 16
# The head format is recorded and shown by info; an 8-bit head costs little perplexity.
"$LM_BIN" quantize -m "$model" -o "$tmp/h8.lmq" --head 8 --threads 2 2> /dev/null > "$tmp/out.txt"
grep -q "embedding 8-bit, lm_head 8-bit" "$tmp/out.txt" || fail "no head format in the summary: $(cat "$tmp/out.txt")"
"$LM_BIN" info -m "$tmp/h8.lmq" > "$tmp/info8.txt"
grep -q "^quantization: lightmamba W4A4, .*, embedding 8-bit, lm_head 8-bit$" "$tmp/info8.txt" || fail "info does not show the head format"
grep -q "lm_head.qweight .*Q8" "$tmp/info8.txt" || fail "info does not list the Q8 lm_head"
h8=$(ppl "$tmp/h8.lmq")
echo "ppl on 40 kB: lightmamba W4A4 with an 8-bit embedding and lm_head $h8"
awk -v f="$q4" -v q="$h8" 'BEGIN { exit !(q > 0 && q < f * 1.01 && q > f * 0.99) }' || fail "head 8 ppl $h8 not within 1 % of $q4"
# A research activation format is recorded and shown by info.
"$LM_BIN" quantize -m "$model" -o "$tmp/g32.lmq" --act-group 32 --act-scale real --threads 2 > /dev/null 2>&1
"$LM_BIN" info -m "$tmp/g32.lmq" > "$tmp/info32.txt"
grep -q "^quantization: lightmamba W4A4, GPTQ no, SSM float, activations 32 channels, real, embedding f16, lm_head f16$" "$tmp/info32.txt" ||
    fail "info does not show the activation format"
echo "ok"
