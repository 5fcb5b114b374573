#!/usr/bin/env bash
# Quantization quality (the paper's Table III on our models): WikiText-2 test perplexity of
# mamba2-tiny (bundled) and mamba2-small (../shared/models, skipped when absent) as FP16 (the
# float checkpoint), RTN, SmoothQuant and LightMamba at W8A8 and W4A4, LightMamba W4A4 with GPTQ, and
# LightMamba* (every block in integers: --ssm pot8) at W8A8 and W4A4, the latter also with the
# authors' released datapath and with each of its choices alone (--datapath, docs/release-datapath.md).
#
#   bash bench/quality.sh [--bytes N] [--threads K] [--models "tiny small"] [--rows REGEX]
#
# --rows REGEX runs only the configurations whose name matches the extended regular expression
# (e.g. --rows 'LightMamba\*'), plus FP16, the base of the "vs FP16" column.
# Protocol (shared/models/README.md): the whole test text, consecutive chunks of 1024 tokens, state
# reset per chunk. --bytes N scores only the first N bytes of the text instead (quicker, and then
# NOT the protocol: the table says so). Calibration: the quantizer's defaults (128 samples of 512
# tokens of the bundled WikiText-2 validation text). Targets (not tests): W8A8 LightMamba within 1 %
# of FP16; W4A4 LightMamba < SmoothQuant < RTN; the best W4A4 within 25 % of FP16; LightMamba* W4A4
# within 5 % of LightMamba W4A4 (the paper: 6.35 vs 6.48). The integer model runs its SSM in scalar
# integer code: its rows take several times longer than the others.
# Uses $LM_BIN, else build/lightmamba (bash scripts/setup.sh builds it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LM_BIN:-$root/build/lightmamba}
bytes=0 threads=0 models="tiny small" rows=""
while [ $# -gt 0 ]; do
    case "$1" in
    --bytes) bytes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    *) echo "usage: bash bench/quality.sh [--bytes N] [--threads K] [--models \"tiny small\"] [--rows REGEX]" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "quality.sh: no $bin (run: bash scripts/setup.sh, or set LM_BIN)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="$root/data/wikitext2_test.txt"
scope="the whole WikiText-2 test text (the protocol)"
if [ "$bytes" -gt 0 ]; then
    head -c "$bytes" "$text" > "$tmp/text.txt"
    text="$tmp/text.txt"
    scope="the first $bytes bytes of WikiText-2 test only (NOT the full protocol)"
fi

ppl() { "$bin" perplexity -m "$1" -f "$text" --ctx 1024 --threads "$threads" --json | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }

# name | quantize options ("" = the float model itself)
configs=(
    "FP16|"
    "RTN W8A8|--method rtn --wbits 8 --abits 8"
    "SmoothQuant W8A8|--method smoothquant --wbits 8 --abits 8"
    "LightMamba W8A8|--method lightmamba --wbits 8 --abits 8"
    "RTN W4A4|--method rtn --wbits 4 --abits 4"
    "SmoothQuant W4A4|--method smoothquant --wbits 4 --abits 4"
    "LightMamba W4A4|--method lightmamba --wbits 4 --abits 4"
    "LightMamba W4A4 GPTQ|--method lightmamba --wbits 4 --abits 4 --gptq"
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

echo "WikiText-2 perplexity, ctx 1024, over $scope; $bin, threads ${threads/#0/all}"
echo
echo "| model | configuration | perplexity | vs FP16 | quantize s |"
echo "|---|---|---:|---:|---:|"
for name in $models; do
    case "$name" in
    tiny) dir="$root/models/mamba2-tiny" ;;
    small) dir="$root/../shared/models/mamba2-small" ;;
    *) dir="$name" ;;
    esac
    if [ ! -d "$dir" ]; then
        echo "| mamba2-$name | skipped: $dir not found | | | |"
        continue
    fi
    base=""
    for c in "${configs[@]}"; do
        label=${c%%|*} opts=${c#*|} model="$dir" secs="-"
        if [ -n "$rows" ] && [ -n "$opts" ] && ! grep -Eq -- "$rows" <<< "$label"; then continue; fi
        if [ -n "$opts" ]; then
            model="$tmp/q.lmq"
            start=$(date +%s.%N)
            # shellcheck disable=SC2086
            "$bin" quantize -m "$dir" -o "$model" $opts --threads "$threads" > /dev/null 2> "$tmp/quantize.log" ||
                { cat "$tmp/quantize.log" >&2; exit 1; }
            secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
        fi
        p=$(ppl "$model")
        [ -n "$base" ] || base=$p
        rel=$(awk -v p="$p" -v b="$base" 'BEGIN { printf "%+.2f %%", 100 * (p / b - 1) }')
        echo "| mamba2-$name | $label | $p | $rel | $secs |"
        rm -f "$tmp/q.lmq"
    done
done
