# lightmamba synth and bench through the CLI on a small custom config: the synthesized file
# (quantized with the float or the pot8 SSM, with a float16 or 4-bit embedding and lm_head, and
# the float32 directory) is accepted by info, generate and bench; bench --json
# has every field, with sane values; bad options are refused with one error line and no output.
set -euo pipefail
: "${LM_BIN:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# a small Mamba2 (the GPT-NeoX vocabulary, so generate can tokenize a prompt)
cat > "$tmp/config.json" <<'JSON'
{"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2, "state_size": 16, "head_dim": 16,
 "num_heads": 8, "n_groups": 1, "expand": 2, "conv_kernel": 4, "layer_norm_epsilon": 1e-5,
 "vocab_size": 50288, "tie_word_embeddings": true, "use_bias": false, "use_conv_bias": true,
 "rms_norm": true, "norm_before_gate": false}
JSON

"$LM_BIN" synth --config "$tmp/config.json" -o "$tmp/w4a4.lmq" --seed 5 --threads 2 > "$tmp/out.txt"
grep -q "wrote $tmp/w4a4.lmq: lightmamba W4A4, embedding and lm_head f16, d_model 64, 2 layers" "$tmp/out.txt" || fail "no summary: $(cat "$tmp/out.txt")"
"$LM_BIN" info -m "$tmp/w4a4.lmq" > "$tmp/info.txt"
grep -q "in_proj.qweight .*Q4" "$tmp/info.txt" || fail "info does not list the Q4 weights"
"$LM_BIN" generate -m "$tmp/w4a4.lmq" -p "The history of the city" -n 6 --temp 0 --threads 2 > "$tmp/gen.txt" 2> /dev/null
[ "$(wc -c < "$tmp/gen.txt")" -gt 24 ] || fail "generate produced nothing"

# bench --json: every field present; rates positive; the bytes are the model's
"$LM_BIN" bench -m "$tmp/w4a4.lmq" --prompt 70 --gen 4 --threads 2 --json > "$tmp/bench.json"
for f in model weights threads simd prompt_tokens prefill_seconds prefill_tokens_per_second gen_tokens decode_seconds \
         decode_tokens_per_second prefill_vs_decode decode_bytes_per_token weight_bytes lm_head_bytes state_bytes \
         achieved_gb_per_second read_bandwidth_gb_per_second bandwidth_percent; do
    grep -q "\"$f\": " "$tmp/bench.json" || fail "bench --json lacks $f: $(cat "$tmp/bench.json")"
done
num() { sed -n "s/.*\"$1\": \([0-9.eE+-]*\).*/\1/p" "$tmp/bench.json"; }
awk -v p="$(num prefill_tokens_per_second)" -v d="$(num decode_tokens_per_second)" -v b="$(num read_bandwidth_gb_per_second)" \
    'BEGIN { exit !(p > 0 && d > 0 && b > 0) }' || fail "non-positive rates: $(cat "$tmp/bench.json")"
# tied 50288 x 64 lm_head as float16 in memory (used as stored in the file)
[ "$(num lm_head_bytes)" = $((50288 * 64 * 2)) ] || fail "lm_head bytes $(num lm_head_bytes)"
grep -q '"weights": "lightmamba W4A4"' "$tmp/bench.json" || fail "weights kind"
"$LM_BIN" bench -m "$tmp/w4a4.lmq" --prompt 8 --gen 2 --threads 1 | grep -q "% of the measured read bandwidth" || fail "bench table"

# the embedding and lm_head at 4 bits: tied, 50288 rows of 32 bytes + a scale byte + e0
"$LM_BIN" synth --config "$tmp/config.json" -o "$tmp/h4.lmq" --head 4 --seed 5 --threads 2 > "$tmp/out.txt"
grep -q "embedding and lm_head 4-bit" "$tmp/out.txt" || fail "no head format: $(cat "$tmp/out.txt")"
"$LM_BIN" bench -m "$tmp/h4.lmq" --prompt 8 --gen 2 --threads 2 --json > "$tmp/bench.json"
[ "$(num lm_head_bytes)" = $((50288 * 34)) ] || fail "4-bit lm_head bytes $(num lm_head_bytes)"
"$LM_BIN" generate -m "$tmp/h4.lmq" -p "The history" -n 4 --temp 0 --threads 2 > /dev/null 2>&1 || fail "generate with a 4-bit head"

# LightMamba* (--ssm pot8): the integer blocks, int8 state (with an exponent byte per 8 values:
# conv 2 x 3 x 160, SSM 2 x 8 x 16 x 16), the same greedy text at 1 and 2 threads
"$LM_BIN" synth --config "$tmp/config.json" -o "$tmp/p8.lmq" --ssm pot8 --seed 5 --threads 2 > "$tmp/out.txt"
grep -q "wrote $tmp/p8.lmq: lightmamba W4A4 ssm pot8," "$tmp/out.txt" || fail "no pot8 summary: $(cat "$tmp/out.txt")"
"$LM_BIN" info -m "$tmp/p8.lmq" > "$tmp/info.txt"
grep -q "SSM pot8" "$tmp/info.txt" && grep -q "layers.1.mixer.int.lut.value" "$tmp/info.txt" || fail "info of the pot8 synth"
"$LM_BIN" bench -m "$tmp/p8.lmq" --prompt 8 --gen 2 --threads 2 --json > "$tmp/bench.json"
[ "$(num state_bytes)" = $((960 + 120 + 4096 + 512)) ] || fail "pot8 state bytes $(num state_bytes)"
for k in 1 2; do
    "$LM_BIN" generate -m "$tmp/p8.lmq" -p "The history of" -n 8 --temp 0 --threads $k > "$tmp/gen$k.txt" 2> /dev/null
done
[ "$(wc -c < "$tmp/gen1.txt")" -gt 20 ] && cmp -s "$tmp/gen1.txt" "$tmp/gen2.txt" || fail "pot8 generate at 1 and 2 threads"

# W8A8 and the float32 directory
"$LM_BIN" synth --config "$tmp/config.json" -o "$tmp/w8a8.lmq" --wbits 8 --abits 8 --method rtn > /dev/null
"$LM_BIN" info -m "$tmp/w8a8.lmq" | grep -q "in_proj.qweight .*Q8" || fail "W8A8 synth"
"$LM_BIN" synth --config "$tmp/config.json" -o "$tmp/f32" --wbits 32 --seed 5 > /dev/null
"$LM_BIN" info -m "$tmp/f32" | grep -q "in_proj.weight .*F32" || fail "float synth: $("$LM_BIN" info -m "$tmp/f32" 2>&1 | head -3)"
"$LM_BIN" bench -m "$tmp/f32" --prompt 70 --gen 4 --json | grep -q '"weights": "float32"' || fail "bench on the float model"
"$LM_BIN" generate -m "$tmp/f32" -p "Hello" -n 4 --temp 0 > /dev/null 2>&1 || fail "generate on the float model"

# bad input: one line on stderr, non-zero exit, no file
bad() {
    local out="$1"; shift
    if "$LM_BIN" "$@" > /dev/null 2> "$tmp/err"; then fail "accepted: $*"; fi
    [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "not one error line for $*: $(cat "$tmp/err")"
    grep -q "error" "$tmp/err" || fail "no error for $*"
    [ ! -e "$out" ] || fail "$* left $out"
}
bad "$tmp/x.lmq" synth --config mamba2-9b -o "$tmp/x.lmq"
grep -q "unknown model config 'mamba2-9b'" "$tmp/err" || fail "bad config message: $(cat "$tmp/err")"
bad "$tmp/x.lmq" synth --config "$tmp/nonexistent.json" -o "$tmp/x.lmq"
echo '{"hidden_size": 64' > "$tmp/broken.json"
bad "$tmp/x.lmq" synth --config "$tmp/broken.json" -o "$tmp/x.lmq"
bad "$tmp/x.lmq" synth --config "$tmp/config.json" -o "$tmp/x.lmq" --wbits 8 --abits 4
bad "$tmp/x.lmq" synth --config "$tmp/config.json" -o "$tmp/x.lmq" --wbits 6
bad "$tmp/x.lmq" synth --config "$tmp/config.json" -o "$tmp/x.lmq" --ssm int8
grep -q -- "--ssm 'int8': fp or pot8" "$tmp/err" || fail "bad ssm message: $(cat "$tmp/err")"
bad "$tmp/x" synth --config "$tmp/config.json" -o "$tmp/x" --wbits 32 --ssm pot8
bad "$tmp/x.lmq" synth --config "$tmp/config.json" -o "$tmp/x.lmq" --method gptq
bad "$tmp/x.lmq" synth --config "$tmp/config.json" -o "$tmp/x.lmq" --head 2
grep -q -- "--head '2': f16, 8 or 4" "$tmp/err" || fail "bad head message: $(cat "$tmp/err")"
bad "$tmp/x" synth --config "$tmp/config.json" -o "$tmp/x" --wbits 32 --head 8
bad "$tmp/x.lmq" synth --config "$tmp/config.json"
bad "$tmp/none" bench -m "$tmp/none"
bad "$tmp/none" bench -m "$tmp/w4a4.lmq" --prompt 0
echo "synth and bench: OK"
