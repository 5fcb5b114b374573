#!/usr/bin/env bash
# examples/generate.c on the tiny model: three continuations of one prompt forked with
# lm_session_copy, each printed after the prompt, not all the same (their seeds differ), and the
# same three on a second run (the seeds fix them).
set -u
EXAMPLE=${LM_EXAMPLE_GENERATE:?LM_EXAMPLE_GENERATE not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

prompt="The history of the city"
"$EXAMPLE" "$ROOT/models/mamba2-tiny" "$prompt" 24 >"$tmp/a" 2>"$tmp/err" || { echo "FAIL: exit status $?:"; cat "$tmp/err"; fail=1; }
"$EXAMPLE" "$ROOT/models/mamba2-tiny" "$prompt" 24 >"$tmp/b" 2>&1 || fail=1
cat "$tmp/a"
for i in 1 2 3; do
    grep -q "^\[$i\] $prompt." "$tmp/a" || { echo "FAIL: no continuation [$i] after the prompt"; fail=1; }
done
[ "$(cut -c5- "$tmp/a" | sort -u | wc -l)" -ge 2 ] || { echo "FAIL: the three seeds gave the same text"; fail=1; }
cmp -s "$tmp/a" "$tmp/b" || { echo "FAIL: a second run printed other text"; fail=1; }
"$EXAMPLE" "$ROOT/models/none" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "loading the model" "$tmp/err" || { echo "FAIL: a missing model is not an error:"; cat "$tmp/err"; fail=1; }
[ $fail -eq 0 ] && echo "ok: three forked continuations"
exit $fail
