#!/usr/bin/env bash
# Quantization quality (the paper's Table III on our models): WikiText-2 test perplexity of
# mamba2-tiny (bundled) and mamba2-small (../shared/models, skipped when absent) as FP16 (the
# float checkpoint), RTN, SmoothQuant and LightMamba at W8A8 and W4A4, LightMamba W4A4 with GPTQ, and
# LightMamba W4A4 with the embedding and lm_head at 8 and 4 bits (--head, --embedding,
# docs/quantized-format.md),
# LightMamba* (every block in integers: --ssm pot8) at W8A8 and W4A4, the latter also with the
# authors' released datapath and with each of its choices alone (--datapath, docs/release-datapath.md);
# for each also the KL divergence from the float model (mean and 99th percentile over the scored
# tokens, nats) and the top-1 agreement with it (docs/evaluation.md), from one saved float base.
#
#   bash bench/quality.sh [--bytes N] [--threads K] [--models "tiny small"] [--rows REGEX]
#                         [--sweep] [--plots DIR]
#
# --rows REGEX runs only the configurations whose name matches the extended regular expression
# (e.g. --rows 'LightMamba\*'), plus FP16, the base of the "vs FP16" column.
# --sweep runs the activation granularity study instead of the table: W4A4 RTN, SmoothQuant and
# LightMamba, each with and without GPTQ, with activation groups of 8 (the hardware's), 32, 128
# channels and one per token (power-of-two scales; lightmamba quantize --act-group), as rows of
# perplexity, KL and top-1 agreement. --plots DIR (with --sweep) also writes DIR/kl_granularity_MODEL.svg
# (KL against the group, one line per method) and DIR/outproj_hist_MODEL.svg (the values of a middle
# layer's out_proj input before and after LightMamba's online rotation, bench_quant_error --hist).
# Protocol (shared/models/README.md): the whole test text, consecutive chunks of 1024 tokens, state
# reset per chunk. --bytes N scores only the first N bytes of the text instead (quicker, and then
# NOT the protocol: the output says so). Calibration: the quantizer's defaults (128 samples of 512
# tokens of the bundled WikiText-2 validation text). Targets (not tests): W8A8 LightMamba within 1 %
# of FP16; W4A4 LightMamba < SmoothQuant < RTN; the best W4A4 within 25 % of FP16; LightMamba* W4A4
# within 5 % of LightMamba W4A4 (the paper: 6.35 vs 6.48). The integer model runs its SSM in scalar
# integer code: its rows take several times longer than the others.
# Uses $LM_BIN, else build/lightmamba (bash scripts/setup.sh builds it), and bench_quant_error and
# bench_plot beside it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LM_BIN:-$root/build/lightmamba}
tools=$(dirname "$bin")
bytes=0 threads=0 models="tiny small" rows="" sweep=0 plots=""
usage="usage: bash bench/quality.sh [--bytes N] [--threads K] [--models \"tiny small\"] [--rows REGEX] [--sweep] [--plots DIR]"
while [ $# -gt 0 ]; do
    case "$1" in
    --bytes) bytes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --sweep) sweep=1; shift ;;
    --plots) plots=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "quality.sh: no $bin (run: bash scripts/setup.sh, or set LM_BIN)" >&2; exit 1; }
if [ -n "$plots" ]; then
    [ "$sweep" = 1 ] || { echo "quality.sh: --plots goes with --sweep" >&2; exit 2; }
    [ -x "$tools/bench_plot" ] && [ -x "$tools/bench_quant_error" ] || { echo "quality.sh: no bench_plot / bench_quant_error in $tools" >&2; exit 1; }
    mkdir -p "$plots"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="$root/data/wikitext2_test.txt"
scope="the whole WikiText-2 test text (the protocol)"
if [ "$bytes" -gt 0 ]; then
    head -c "$bytes" "$text" > "$tmp/text.txt"
    text="$tmp/text.txt"
    scope="the first $bytes bytes of WikiText-2 test only (NOT the full protocol)"
fi

json() { sed -n "s/.*\"$1\": \([-0-9.eE+]*\).*/\1/p" <<< "$2"; }
# score MODEL: "ppl kl_mean kl_p99 top1%" against the saved float base
score() {
    local out
    out=$("$bin" perplexity -m "$1" -f "$text" --ctx 1024 --threads "$threads" --load-base "$tmp/base.lmb" --json)
    awk -v p="$(json ppl "$out")" -v k="$(json kl_mean "$out")" -v k99="$(json kl_p99 "$out")" -v a="$(json top1_agreement "$out")" \
        'BEGIN { printf "%.2f %.4g %.3g %.2f\n", p, k, k99, 100 * a }' 
}
# quantize DIR OPTIONS...: writes $tmp/q.lmq, echoes the seconds it took
quantize() {
    local dir=$1 start; shift
    start=$(date +%s.%N)
    "$bin" quantize -m "$dir" -o "$tmp/q.lmq" "$@" --threads "$threads" > /dev/null 2> "$tmp/quantize.log" ||
        { cat "$tmp/quantize.log" >&2; exit 1; }
    awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'
}
model_dir() {
    case "$1" in
    tiny) echo "$root/models/mamba2-tiny" ;;
    small) echo "$root/../shared/models/mamba2-small" ;;
    *) echo "$1" ;;
    esac
}

# name | quantize options
configs=(
    "RTN W8A8|--method rtn --wbits 8 --abits 8"
    "SmoothQuant W8A8|--method smoothquant --wbits 8 --abits 8"
    "LightMamba W8A8|--method lightmamba --wbits 8 --abits 8"
    "RTN W4A4|--method rtn --wbits 4 --abits 4"
    "SmoothQuant W4A4|--method smoothquant --wbits 4 --abits 4"
    "LightMamba W4A4|--method lightmamba --wbits 4 --abits 4"
    "LightMamba W4A4 GPTQ|--method lightmamba --wbits 4 --abits 4 --gptq"
    "LightMamba W4A4, head 8-bit|--method lightmamba --wbits 4 --abits 4 --head 8"
    "LightMamba W4A4, head 4-bit|--method lightmamba --wbits 4 --abits 4 --head 4"
    "LightMamba W4A4, head 4-bit, embedding 8-bit|--method lightmamba --wbits 4 --abits 4 --head 4 --embedding 8"
    "LightMamba* W8A8 (pot8 SSM)|--method lightmamba --wbits 8 --abits 8 --ssm pot8"
    "LightMamba* W4A4 (pot8 SSM)|--method lightmamba --wbits 4 --abits 4 --ssm pot8"
    "LightMamba* W4A4, release datapath|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath release"
    "LightMamba* W4A4, release truncation only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath trunc"
    "LightMamba* W4A4, release quantizer rule only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath qrule"
    "LightMamba* W4A4, release LUTs only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath lut8"
    "LightMamba* W4A4, release RMSNorm only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath norm8"
    "LightMamba* W4A4, release dB grouping only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath dbheads"
    "LightMamba* W4A4, release fixed points only|--method lightmamba --wbits 4 --abits 4 --ssm pot8 --datapath sites"
)
# the granularity sweep: methods (name | options) and activation groups
methods=(
    "RTN|--method rtn"
    "RTN+GPTQ|--method rtn --gptq"
    "SmoothQuant|--method smoothquant"
    "SmoothQuant+GPTQ|--method smoothquant --gptq"
    "LightMamba|--method lightmamba"
    "LightMamba+GPTQ|--method lightmamba --gptq"
)
groups="8 32 128 token"

echo "WikiText-2, ctx 1024, over $scope; $bin, threads ${threads/#0/all}"
echo
if [ "$sweep" = 1 ]; then
    echo "Activation granularity, W4A4, power-of-two scales (KL from the float model in nats, top-1 agreement with it)"
    echo
    echo "| model | method | act group | perplexity | vs FP16 | KL mean | KL p99 | top-1 % |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
else
    echo "| model | configuration | perplexity | vs FP16 | KL mean | KL p99 | top-1 % | quantize s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
fi
for name in $models; do
    dir=$(model_dir "$name")
    if [ ! -d "$dir" ]; then
        echo "| mamba2-$name | skipped: $dir not found | | | | | | |"
        continue
    fi
    # the float model, saved once as the base of every comparison
    base=$("$bin" perplexity -m "$dir" -f "$text" --ctx 1024 --threads "$threads" --save-base "$tmp/base.lmb" --json)
    base=$(awk -v p="$(json ppl "$base")" 'BEGIN { printf "%.2f", p }')
    rel() { awk -v p="$1" -v b="$base" 'BEGIN { printf "%+.2f %%", 100 * (p / b - 1) }'; }
    if [ "$sweep" = 1 ]; then
        : > "$tmp/kl.txt"
        echo "| mamba2-$name | FP16 | | $base | | 0 | 0 | 100.00 |"
        for m in "${methods[@]}"; do
            label=${m%%|*} opts=${m#*|}
            for g in $groups; do
                # shellcheck disable=SC2086
                quantize "$dir" $opts --wbits 4 --abits 4 --act-group "$g" > /dev/null
                read -r p kl p99 top1 <<< "$(score "$tmp/q.lmq")"
                echo "| mamba2-$name | $label | $g | $p | $(rel "$p") | $kl | $p99 | $top1 |"
                echo "$label $g $kl" >> "$tmp/kl.txt"
                rm -f "$tmp/q.lmq"
            done
        done
        if [ -n "$plots" ]; then
            "$tools/bench_plot" -f "$tmp/kl.txt" -o "$plots/kl_granularity_$name.svg" --categories "${groups// /,}" \
                --title "mamba2-$name W4A4: KL(float || quantized) against the activation group" \
                --xlabel "channels per power-of-two activation scale" --ylabel "mean KL per token (nats)"
            layer=$(( $(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$dir/config.json") / 2 ))
            for side in "rtn before_rotation" "lightmamba after_rotation"; do
                read -r method series <<< "$side"
                "$tools/bench_quant_error" -m "$dir" --method "$method" --rotate online --windows 8 \
                    --hist "$tmp/hist.txt" --hist-layer "$layer" --hist-name "$series" > /dev/null
            done
            "$tools/bench_plot" -f "$tmp/hist.txt" -o "$plots/outproj_hist_$name.svg" --logy \
                --title "mamba2-$name layer $layer out_proj input, before and after the Hadamard rotation" \
                --xlabel "value / RMS of the layer's input" --ylabel "count (8 windows of 512 tokens)"
            grep '^#' "$tmp/hist.txt" | sed "s/^# /histogram, mamba2-$name layer $layer: /"
            rm -f "$tmp/hist.txt"
        fi
        continue
    fi
    echo "| mamba2-$name | FP16 (the float checkpoint) | $base | | 0 | 0 | 100.00 | - |"
    for c in "${configs[@]}"; do
        label=${c%%|*} opts=${c#*|}
        if [ -n "$rows" ] && ! grep -Eq -- "$rows" <<< "$label"; then continue; fi
        # shellcheck disable=SC2086
        secs=$(quantize "$dir" $opts)
        read -r p kl p99 top1 <<< "$(score "$tmp/q.lmq")"
        echo "| mamba2-$name | $label | $p | $(rel "$p") | $kl | $p99 | $top1 | $secs |"
        rm -f "$tmp/q.lmq"
    done
done
