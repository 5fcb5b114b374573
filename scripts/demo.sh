#!/usr/bin/env bash
# The main job on the bundled tiny model: set up and build, generate text, quantize it the
# LightMamba way (rotation-assisted W4A4), compare WikiText-2 perplexity of the float and
# quantized models, and simulate the accelerator running Mamba2-2.7B on the VCK190.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(bash scripts/setup.sh | tail -n 1)
LM="$BUILD/lightmamba"
MODEL=models/mamba2-tiny
OUT=${LM_DEMO_OUT:-out}
mkdir -p "$OUT"

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "model" "$LM" info -m "$MODEL"
step "generate (float32, greedy)" "$LM" generate -m "$MODEL" -p "The history of the city" -n 48 --temp 0
step "quantize (LightMamba W4A4: Hadamard rotation, 4-bit weights and activations)" \
  "$LM" quantize -m "$MODEL" -o "$OUT/tiny-w4a4.lmq" --method lightmamba --wbits 4 --abits 4
step "generate (W4A4)" "$LM" generate -m "$OUT/tiny-w4a4.lmq" -p "The history of the city" -n 48 --temp 0
step "perplexity, float32" "$LM" perplexity -m "$MODEL" -f data/wikitext2_test.txt
step "perplexity, W4A4" "$LM" perplexity -m "$OUT/tiny-w4a4.lmq" -f data/wikitext2_test.txt
step "accelerator simulation (Mamba2-2.7B, W4A4, VCK190)" "$LM" sim --platform vck190 --config mamba2-2.7b --wbits 4
