#!/usr/bin/env bash
# lightmamba info: the parameter count of the shared models (as in their train_report.json),
# and a one-line error with exit status 1 (no crash, nothing on stdout) for bad input.
set -u
BIN=${LM_BIN:?LM_BIN not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

report_params() { sed -n 's/.*"params": *\([0-9]*\).*/\1/p' "$1/train_report.json"; }

check_params() {  # model dir
    local want got
    want=$(report_params "$1")
    got=$("$BIN" info -m "$1" | sed -n 's/^parameters: \([0-9]*\).*/\1/p')
    if [ -z "$want" ] || [ "$got" != "$want" ]; then
        echo "FAIL: $1: parameters '$got', train_report.json says '$want'"; fail=1
    else
        echo "ok: $1: $got parameters"
    fi
}

. "$(dirname "$0")/cli_expect.sh"

check_params "$ROOT/models/mamba2-tiny"
out=$("$BIN" info -m "$ROOT/models/mamba2-tiny")
for want in "d_model 128, n_layer 4, d_inner 256, n_heads 4, head_dim 64, d_state 128, n_groups 1, d_conv 4" \
            "vocab_size 50288" "tensors: 38" "backbone.layers.3.mixer.out_proj.weight" "[512, 1, 4]"; do
    grep -qF -- "$want" <<<"$out" || { echo "FAIL: info output lacks '$want'"; fail=1; }
done
if [ -d "${LM_SHARED:-/nonexistent}/models/mamba2-small" ]; then
    check_params "$LM_SHARED/models/mamba2-small"
else
    echo "(../shared not found: mamba2-small not checked)"
fi

expect_error "missing directory" info -m "$tmp/nope"
expect_error "no -m" info
expect_error "unknown option" info -m "$ROOT/models/mamba2-tiny" --frobnicate
expect_error "file instead of directory" info -m "$ROOT/models/mamba2-tiny/config.json"

mkdir "$tmp/bad"
ln -s "$ROOT/models/mamba2-tiny/model.safetensors" "$tmp/bad/model.safetensors"
printf '{"hidden_size": 128, "num_hidden_layers": 4,, }' >"$tmp/bad/config.json"
expect_error "malformed config.json" info -m "$tmp/bad"
head -c 300 "$ROOT/models/mamba2-tiny/config.json" >"$tmp/bad/config.json"
expect_error "truncated config.json" info -m "$tmp/bad"
sed 's/"state_size": 128/"state_size": "128"/' "$ROOT/models/mamba2-tiny/config.json" >"$tmp/bad/config.json"
expect_error "mistyped config key" info -m "$tmp/bad"

cp "$ROOT/models/mamba2-tiny/config.json" "$tmp/bad/config.json"
rm "$tmp/bad/model.safetensors"
for n in 0 5 1000 13954191; do
    head -c $n "$ROOT/models/mamba2-tiny/model.safetensors" >"$tmp/bad/model.safetensors"
    expect_error "safetensors truncated to $n bytes" info -m "$tmp/bad"
done
sed 's/"state_size": 128/"state_size": 64/' "$ROOT/models/mamba2-tiny/config.json" >"$tmp/bad/config.json"
ln -sf "$ROOT/models/mamba2-tiny/model.safetensors" "$tmp/bad/model.safetensors"
expect_error "tensor shapes vs config" info -m "$tmp/bad"

exit $fail
