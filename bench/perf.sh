#!/usr/bin/env bash
# Decode and prefill speed at real Mamba2 shapes, against this machine's memory bandwidth.
# Models come from `lightmamba synth` (random weights of the real shapes, W4A4 LightMamba; float32
# for the sizes that fit), written once into DIR and reused; each row is `lightmamba bench`
# (prompt PROMPT random tokens, GEN greedy decode steps) run RUNS times: the best run, and the
# spread (min-max) of decode tok/s over the runs, since other processes on the machine disturb it.
#   bash bench/perf.sh [DIR]      DIR: where the models go (default /tmp/lightmamba-perf; never the repo)
# Environment: THREADS (default: all cores), RUNS (3), PROMPT (512), GEN (128), PROFILE (1: under each
#   row, the best run's decode time per stage, from `bench --profile`),
#   MODELS ("mamba2-130m mamba2-1.3b mamba2-2.7b"), FLOAT ("mamba2-130m mamba2-1.3b": float32 rows;
#   mamba2-2.7b float32 is 10.8 GB of disk and memory and several minutes to write: add it if wanted),
#   HEADS ("": W4A4 rows with the embedding and lm_head quantized too, e.g. HEADS="8 4": synth --head,
#   docs/quantized-format.md), POT8 ("": the models, e.g. POT8="mamba2-130m mamba2-2.7b", that also get
#   a LightMamba* row: synth --ssm pot8, every block in integers).
# Uses $LM_BIN if set, else build/lightmamba.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/lightmamba-perf}
THREADS=${THREADS:-0}
PROFILE=${PROFILE:-}
RUNS=${RUNS:-3}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
MODELS=${MODELS:-"mamba2-130m mamba2-1.3b mamba2-2.7b"}
FLOAT=${FLOAT-"mamba2-130m mamba2-1.3b"}  # FLOAT="" : no float32 rows
HEADS=${HEADS:-}
POT8=${POT8:-}
BIN=${LM_BIN:-build/lightmamba}
[ -x "$BIN" ] || BIN=$(bash scripts/setup.sh | tail -n 1)/lightmamba
mkdir -p "$DIR"

field() { sed -n "s/.*\"$1\": \"*\([^,\"}]*\).*/\1/p" <<<"$2"; }

row() { # name, model path, kind
    local best="" best_tps=0 lo="" hi=""
    for _ in $(seq "$RUNS"); do
        local j tps
        j=$("$BIN" bench -m "$2" --prompt "$PROMPT" --gen "$GEN" --threads "$THREADS" ${PROFILE:+--profile} --json)
        tps=$(field decode_tokens_per_second "$j")
        lo=$(awk -v a="$lo" -v b="$tps" 'BEGIN { print (a == "" || b < a) ? b : a }')
        hi=$(awk -v a="$hi" -v b="$tps" 'BEGIN { print (a == "" || b > a) ? b : a }')
        if awk -v a="$tps" -v b="$best_tps" 'BEGIN { exit !(a > b) }'; then best=$j best_tps=$tps; fi
    done
    printf '%-12s %-8s %9.1f %13s %10.1f %9.1f %8.1f %8.1f %7.1f%% %8.1f\n' "$1" "$3" "$best_tps" "$lo-$hi" \
        "$(field prefill_tokens_per_second "$best")" "$(field prefill_vs_decode "$best")" \
        "$(awk -v b="$(field decode_bytes_per_token "$best")" 'BEGIN { print b / 1e6 }')" \
        "$(field achieved_gb_per_second "$best")" "$(field bandwidth_percent "$best")" \
        "$(field read_bandwidth_gb_per_second "$best")"
    if [ -n "${PROFILE:-}" ]; then
        local stages="" s
        for s in norms linear conv ssm hadamard lm_head "integer blocks" other outside; do
            local ms
            ms=$(grep -o "\"$s\": {[^}]*}" <<<"$best" | sed -n 's/.*"decode_ms_per_token": \([0-9.]*\).*/\1/p')
            [ -n "$ms" ] && [ "$ms" != "0.0000" ] && stages+=" $s $ms"
        done
        echo "    decode ms/token by stage:$stages"
    fi
}

synth() { # config, output, extra options
    [ -e "$2" ] && return 0
    echo "synthesizing $2 ..." >&2
    "$BIN" synth --config "$1" -o "$2" "${@:3}" >&2
}

echo "lightmamba bench: prompt $PROMPT random tokens, $GEN decode steps, threads ${THREADS/#0/all ($(nproc))}, best of $RUNS;" \
     "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %-8s %9s %13s %10s %9s %8s %8s %8s %8s\n' model weights "decode/s" "(spread)" "prefill/s" "pf/dec" \
    "MB/tok" "GB/s" "% bw" "bw GB/s"
for m in $MODELS; do
    synth "$m" "$DIR/$m-w4a4.lmq"
    row "$m" "$DIR/$m-w4a4.lmq" W4A4
    for h in $HEADS; do
        synth "$m" "$DIR/$m-w4a4-head$h.lmq" --head "$h"
        row "$m" "$DIR/$m-w4a4-head$h.lmq" "W4A4 h$h"
    done
    if [[ " $POT8 " == *" $m "* ]]; then
        synth "$m" "$DIR/$m-w4a4-pot8.lmq" --ssm pot8
        row "$m" "$DIR/$m-w4a4-pot8.lmq" "pot8"
    fi
    if [[ " $FLOAT " == *" $m "* ]]; then
        synth "$m" "$DIR/$m-f32" --wbits 32
        row "$m" "$DIR/$m-f32" float32
    fi
done
