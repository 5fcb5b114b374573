#!/usr/bin/env bash
# lightmamba with PyTorch and GGUF models: info names the format, convert writes a GGUF that
# loads back to the same logits (the test_formats executable checks the numbers; here the
# command line), generate uses a GGUF's own tokenizer, and bad input is a one-line error that
# leaves no output file.
set -u
BIN=${LM_BIN:?LM_BIN not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
F=$ROOT/tests/data/formats
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/cli_expect.sh"

expect_line() {  # what, pattern, command...
    local what=$1 want=$2; shift 2
    if "$@" 2>"$tmp/err" | grep -q -e "$want"; then echo "ok: $what"; else echo "FAIL: $what: no '$want'"; cat "$tmp/err"; fail=1; fi
}

expect_line "info: pytorch directory" '^format: pytorch$' "$BIN" info -m "$F/tiny-torch"
expect_line "info: .bin file" '^format: pytorch$' "$BIN" info -m "$F/tiny-torch/pytorch_model.bin"
expect_line "info: gguf" '^format: gguf$' "$BIN" info -m "$F/tiny.gguf"
expect_line "info: gguf tensor types" 'backbone.layers.1.mixer.out_proj.weight *Q8_0' "$BIN" info -m "$F/grouped-q8_0.gguf"
expect_line "info: safetensors" '^format: safetensors$' "$BIN" info -m "$F/tiny-safetensors"

# tiny.gguf carries a small tokenizer (the bundled one has more tokens than its 272 rows).
for type in f32 f16 q8_0; do
    if "$BIN" convert -m "$F/tiny.gguf" -o "$tmp/tiny-$type.gguf" --type "$type" 2>"$tmp/err"; then
        expect_line "convert --type $type loads" '^format: gguf$' "$BIN" info -m "$tmp/tiny-$type.gguf"
    else
        echo "FAIL: convert --type $type:"; cat "$tmp/err"; fail=1
    fi
done
expect_line "generate from a GGUF with its tokenizer" 'the' "$BIN" generate -m "$F/tiny.gguf" -p "the" -n 4 --temp 0

expect_error_matching "convert: tokenizer too large" "embedding rows" convert -m "$F/tiny-torch" -o "$tmp/no.gguf"
expect_error_matching "convert: bad --type" "--type" convert -m "$F/tiny-torch" -o "$tmp/no.gguf" --type q4_k
if ls "$tmp"/no.gguf* >/dev/null 2>&1; then echo "FAIL: a failed convert left $(ls "$tmp"/no.gguf*)"; fail=1; fi
expect_error_matching "non-contiguous tensor" "non-contiguous" info -m "$F/bad/non-contiguous.pt"
expect_error_matching "storage shorter than its tensor" "shorter than" info -m "$F/bad/storage-short.pt"
head -c 3000 "$F/tiny.gguf" >"$tmp/cut.gguf"
expect_error_matching "truncated GGUF" "past" info -m "$tmp/cut.gguf"
exit $fail
