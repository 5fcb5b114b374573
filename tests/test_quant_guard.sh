#!/usr/bin/env bash
# Guard on the numerics of quantization: the perplexity and the KL divergence from the float model
# of every W8A8 / W4A4 configuration of the tiny model, on a fixed prefix (the first 8,000 bytes of
# WikiText-2 test, --ctx 1024: 1,790 scored tokens), frozen below to 1e-4 relative for the release
# build on this machine's CPU (AVX-512): thread counts do not change a bit, any change to a
# quantizer, a kernel or the forward pass shows. Float reordering elsewhere does not stay inside
# 1e-4: it moves some activations across a rounding boundary of the 4- and 8-bit quantizers. The
# instrumented -O0 sanitizer build (no FMA contraction) moved the same code's rows by up to 8.7e-4
# in perplexity and 3.7e-3 in KL (2026-12-07), so the guard does not run there (the same code runs
# under the sanitizers in test_quant_cli and test_eval_kl); another CPU (another SIMD level or
# OpenBLAS kernel) may need the table refreshed. Calibration (SmoothQuant, GPTQ, pot8) is shortened
# to 16 samples of 256 tokens. A deliberate change of the numerics updates the table:
# LM_GUARD_PRINT=1 prints the current values as table rows instead of checking. Last update:
# prefill's chunked scan (float rounding of the scan; the float base's perplexity moved by 2e-9
# relative, the quantized rows by up to 2e-3, activations at a rounding boundary of the 4- and 8-bit
# quantizers landing on the other side).
. "$(dirname "$0")/cli_setup.sh"
if [ "${LM_SANITIZE:-0}" = 1 ]; then echo "SKIP: frozen for the release build's float rounding"; exit 77; fi
head -c 8000 "$ROOT/data/wikitext2_test.txt" >"$tmp/text.txt"
CAL="--calib-samples 16 --calib-len 256"

# name | quantize options | ppl | kl_mean
table=(
    "rtn-w8a8|--method rtn --wbits 8 --abits 8|1459.122830|0.00028050628"
    "smoothquant-w8a8|--method smoothquant --wbits 8 --abits 8|1457.595012|0.00026024899"
    "lightmamba-w8a8|--method lightmamba --wbits 8 --abits 8|1458.832098|0.00028397205"
    "lightmamba-pot8-w8a8|--method lightmamba --wbits 8 --abits 8 --ssm pot8|1446.590712|0.010557156"
    "rtn-w4a4|--method rtn --wbits 4 --abits 4|1478.179422|0.063884785"
    "smoothquant-w4a4|--method smoothquant --wbits 4 --abits 4|1555.801297|0.073367444"
    "lightmamba-w4a4|--method lightmamba --wbits 4 --abits 4|1575.922703|0.070157815"
    "lightmamba-gptq-w4a4|--method lightmamba --wbits 4 --abits 4 --gptq|1525.033141|0.043383567"
    "lightmamba-pot8-w4a4|--method lightmamba --wbits 4 --abits 4 --ssm pot8|1585.420378|0.078331527"
    "lightmamba-w4a4-act32|--method lightmamba --wbits 4 --abits 4 --act-group 32|1583.126837|0.089013397"
    "lightmamba-w4a4-token-real|--method lightmamba --wbits 4 --abits 4 --act-group token --act-scale real|1619.080029|0.086160568"
)

"$BIN" perplexity -m "$MODEL" -f "$tmp/text.txt" --save-base "$tmp/base.lmb" --threads 2 >/dev/null ||
    { echo "FAIL: saving the float base"; exit 1; }
for row in "${table[@]}"; do
    IFS='|' read -r name opts want_ppl want_kl <<<"$row"
    # shellcheck disable=SC2086
    if ! "$BIN" quantize -m "$MODEL" -o "$tmp/q.lmq" $opts $CAL --threads 2 >/dev/null 2>"$tmp/err"; then
        echo "FAIL: $name: quantize: $(cat "$tmp/err")"; fail=1; continue
    fi
    out=$("$BIN" perplexity -m "$tmp/q.lmq" -f "$tmp/text.txt" --load-base "$tmp/base.lmb" --threads 2 --json 2>&1)
    ppl=$(json_number ppl "$out") kl=$(json_number kl_mean "$out")
    if [ "${LM_GUARD_PRINT:-0}" = 1 ]; then
        echo "    \"$name|$opts|$ppl|$kl\""
    elif awk -v p="$ppl" -v wp="$want_ppl" -v k="$kl" -v wk="$want_kl" \
        'function rel(a, b) { d = (a - b) / b; return d < 0 ? -d : d } BEGIN { exit !(p != "" && rel(p, wp) <= 1e-4 && rel(k, wk) <= 1e-4) }'; then
        echo "ok: $name: ppl $ppl, KL $kl"
    else
        echo "FAIL: $name: ppl $ppl (frozen $want_ppl), KL $kl (frozen $want_kl): $out"; fail=1
    fi
done
exit $fail
