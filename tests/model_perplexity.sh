# Sourced by test_model_perplexity*.sh: check_perplexity MODEL_DIR runs
#   lightmamba perplexity -m MODEL_DIR -f data/wikitext2_test.txt --json
# and compares it with MODEL_DIR/train_report.json (ppl computed by transformers): ppl within
# 0.05 %, exactly 285,551 scored tokens, one JSON object on stdout, nothing on stderr (not a
# terminal: no progress bar). Under the sanitizer build (LM_SANITIZE=1, instrumented and
# unoptimised) the text is cut to its first 12,000 bytes (3 chunks) and only the token count (from
# `lightmamba tokenize`) and a finite ppl are checked.
BIN=${LM_BIN:?LM_BIN not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

json_number() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" <<<"$2" | head -n 1; }

check_perplexity() {  # model dir
    local model=$1 text=$ROOT/data/wikitext2_test.txt out
    if [ "${LM_SANITIZE:-0}" = 1 ]; then
        head -c 12000 "$text" >"$tmp/text.txt"; text=$tmp/text.txt
    fi
    out=$("$BIN" perplexity -m "$model" -f "$text" --json 2>"$tmp/err")
    local rc=$?
    if [ $rc -ne 0 ]; then echo "FAIL: $model: exit status $rc: $(cat "$tmp/err")"; fail=1; return; fi
    if [ -s "$tmp/err" ]; then echo "FAIL: $model: wrote to stderr (not a terminal):"; cat "$tmp/err"; fail=1; fi
    if [ "$(wc -l <<<"$out")" -ne 1 ] || [[ "$out" != "{"*"}" ]]; then echo "FAIL: $model: stdout is not one JSON object: $out"; fail=1; fi
    local ppl tokens seconds
    ppl=$(json_number ppl "$out"); tokens=$(json_number tokens "$out"); seconds=$(json_number seconds "$out")
    if [ -z "$seconds" ]; then echo "FAIL: $model: no seconds in $out"; fail=1; fi
    echo "$model: $out"
    if [ "${LM_SANITIZE:-0}" = 1 ]; then
        local n ctx=1024
        n=$("$BIN" tokenize -f "$text" | wc -w)
        local want=$((n - (n + ctx - 1) / ctx))
        [ "$tokens" = "$want" ] || { echo "FAIL: $model: $tokens scored tokens, want $want of $n"; fail=1; }
        awk -v p="$ppl" 'BEGIN { exit !(p > 1 && p < 1e6) }' || { echo "FAIL: $model: ppl '$ppl'"; fail=1; }
        return
    fi
    local report=$model/train_report.json want_ppl want_tokens
    want_ppl=$(json_number wikitext2_test_ppl "$(cat "$report")")
    want_tokens=$(json_number wikitext2_test_scored_tokens "$(cat "$report")")
    [ "$tokens" = 285551 ] && [ "$want_tokens" = 285551 ] ||
        { echo "FAIL: $model: $tokens scored tokens (report: $want_tokens), want 285551"; fail=1; }
    awk -v p="$ppl" -v w="$want_ppl" 'BEGIN { d = (p - w) / w; if (d < 0) d = -d; printf "ppl %s, train_report %s, relative difference %.2e\n", p, w, d; exit !(w > 0 && d <= 5e-4) }' ||
        { echo "FAIL: $model: ppl not within 0.05 % of train_report.json"; fail=1; }
}
