#!/usr/bin/env bash
# lightmamba generate / perplexity: greedy output equals the reference continuation, a seed
# reproduces a sampled run, the scored-token count follows the chunk protocol, and bad input
# gets a one-line error with exit status 1 (no crash, nothing on stdout).
. "$(dirname "$0")/cli_setup.sh"

# ids (decimal) -> int32 little-endian on stdout
to_i32() { for id in "$@"; do printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((id & 255)) $((id >> 8 & 255)) $((id >> 16 & 255)) $((id >> 24 & 255)))"; done; }

# --- greedy generation reproduces reference.json: prompt + greedy_ids, as text ---
ref=$MODEL/reference/reference.json
greedy_ids=$(tr -d ' \n' <"$ref" | sed -n 's/.*"greedy_ids":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' ')
n_prompt=$(tr -d ' \n' <"$ref" | sed -n 's/.*"greedy_prompt_ids":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' ' | wc -w)
n_gen=$(($(wc -w <<<"$greedy_ids") - n_prompt))
to_i32 $greedy_ids >"$tmp/greedy.i32"
"$BIN" tokenize --decode -f "$tmp/greedy.i32" -o "$tmp/want.txt" 2>/dev/null
printf '\n' >>"$tmp/want.txt"
"$BIN" generate -m "$MODEL" -p "The history of the city" -n "$n_gen" --temp 0 --threads 2 >"$tmp/got.txt" 2>"$tmp/err"
if [ $? -ne 0 ] || ! cmp -s "$tmp/got.txt" "$tmp/want.txt" || [ "$n_gen" -lt 1 ]; then
    echo "FAIL: greedy generate differs from the reference:"; cat "$tmp/got.txt" "$tmp/err"; fail=1
else
    echo "ok: greedy generate of $n_gen tokens equals the reference continuation"
fi
grep -q 'prefill: 5 tokens .* tokens/s; decode: [0-9]* tokens .* tokens/s' "$tmp/err" ||
    { echo "FAIL: no speed line on stderr:"; cat "$tmp/err"; fail=1; }

# --- sampling: the same seed gives the same text, from a prompt file, with --json stats ---
printf 'The history of the city' >"$tmp/prompt.txt"
"$BIN" generate -m "$MODEL" -f "$tmp/prompt.txt" -n 40 --temp 0.9 --top-p 0.95 --seed 7 >"$tmp/s1" 2>/dev/null
"$BIN" generate -m "$MODEL" -f "$tmp/prompt.txt" -n 40 --temp 0.9 --top-p 0.95 --seed 7 --threads 1 --json >"$tmp/s2" 2>"$tmp/err"
"$BIN" generate -m "$MODEL" -f "$tmp/prompt.txt" -n 40 --temp 0.9 --top-p 0.95 --seed 8 >"$tmp/s3" 2>/dev/null
if cmp -s "$tmp/s1" "$tmp/s2" && ! cmp -s "$tmp/s1" "$tmp/s3" && [ "$(wc -c <"$tmp/s1")" -gt 40 ]; then
    echo "ok: seeded sampling is reproducible (and another seed differs)"
else
    echo "FAIL: seeded sampling:"; cat "$tmp/s1" "$tmp/s2" "$tmp/s3"; fail=1
fi
tail -n 1 "$tmp/err" | grep -q '^{"prefill_tokens": 5, .*"decode_tokens": 39, .*}$' ||
    { echo "FAIL: --json stats line:"; cat "$tmp/err"; fail=1; }
"$BIN" generate -m "$MODEL" -n 0 >"$tmp/out" 2>"$tmp/err" && [ "$(cat "$tmp/out")" = "" ] ||
    { echo "FAIL: generate with no prompt and -n 0"; fail=1; }

# --- the sampler's knobs: top-k 1 and min-p 1 keep only the most probable token (greedy); the
# repetition penalty changes the greedy text, reproducibly; --ignore-eos changes nothing where the
# model never draws <|endoftext|> (the tiny model, trained on WikiText, practically never does) ---
gen() { "$BIN" generate -m "$MODEL" -p "The history of the city" -n 30 --threads 1 "$@" 2>/dev/null; }
gen --temp 0 >"$tmp/greedy"
gen --temp 1.5 --top-p 1 --top-k 1 --seed 3 >"$tmp/k1"
gen --temp 1.5 --top-p 1 --min-p 1 --seed 4 >"$tmp/p1"
gen --temp 0 --repeat-penalty 1.5 --repeat-last-n 16 >"$tmp/r1"
gen --temp 0 --repeat-penalty 1.5 --repeat-last-n 16 >"$tmp/r2"
gen --temp 0.9 --seed 5 --ignore-eos >"$tmp/e1"
gen --temp 0.9 --seed 5 >"$tmp/e2"
if cmp -s "$tmp/greedy" "$tmp/k1" && cmp -s "$tmp/greedy" "$tmp/p1" && cmp -s "$tmp/r1" "$tmp/r2" &&
    ! cmp -s "$tmp/greedy" "$tmp/r1" && cmp -s "$tmp/e1" "$tmp/e2" && [ "$(wc -c <"$tmp/greedy")" -gt 30 ]; then
    echo "ok: --top-k 1 and --min-p 1 are greedy; --repeat-penalty changes the text reproducibly; --ignore-eos"
else
    echo "FAIL: sampler options:"; cat "$tmp/greedy" "$tmp/k1" "$tmp/p1" "$tmp/r1" "$tmp/r2"; fail=1
fi
LM_KERNELS=scalar "$BIN" generate -m "$MODEL" -p hi -n 2 >/dev/null 2>&1 || { echo "FAIL: LM_KERNELS=scalar"; fail=1; }

# --- perplexity: scored tokens = ids - chunks, for several --ctx ---
head -c 3000 "$ROOT/data/wikitext2_test.txt" >"$tmp/text.txt"
n=$("$BIN" tokenize -f "$tmp/text.txt" 2>/dev/null | wc -w)
for ctx in 2 7 64 100 1024 100000; do
    out=$("$BIN" perplexity -m "$MODEL" -f "$tmp/text.txt" --ctx $ctx --json 2>/dev/null)
    want=$((n - (n + ctx - 1) / ctx))
    got=$(sed -n 's/.*"tokens": *\([0-9]*\).*/\1/p' <<<"$out")
    [ "$got" = "$want" ] && echo "ok: --ctx $ctx scores $got of $n tokens" || { echo "FAIL: --ctx $ctx: '$out', want $want tokens"; fail=1; }
done
"$BIN" perplexity -m "$MODEL" -f "$tmp/text.txt" --ctx 64 | grep -q '^perplexity [0-9.]* (mean nll' ||
    { echo "FAIL: perplexity text output"; fail=1; }

# --- bad input ---
: >"$tmp/empty.txt"
printf 'Hello' >"$tmp/one_token.txt"
truncate -s $((256 * 1024 * 1024 + 1)) "$tmp/huge.txt"   # sparse: no disk used
expect_error "generate: missing model" generate -m "$tmp/nope" -p hi
expect_error "generate: no -m" generate -p hi
expect_error "generate: missing prompt file" generate -m "$MODEL" -f "$tmp/nope.txt"
expect_error "generate: prompt file is a directory" generate -m "$MODEL" -f "$tmp"
expect_error "generate: prompt longer than the limit" generate -m "$MODEL" -f "$tmp/huge.txt"
expect_error "generate: -p and -f" generate -m "$MODEL" -p hi -f "$tmp/prompt.txt"
expect_error "generate: -n negative" generate -m "$MODEL" -p hi -n -1
expect_error "generate: --temp negative" generate -m "$MODEL" -p hi --temp -0.5
expect_error "generate: --top-p 0" generate -m "$MODEL" -p hi --top-p 0
expect_error "generate: --top-p above 1" generate -m "$MODEL" -p hi --top-p 1.5
expect_error "generate: --top-k negative" generate -m "$MODEL" -p hi --top-k -1
expect_error "generate: --min-p above 1" generate -m "$MODEL" -p hi --min-p 1.5
expect_error "generate: --repeat-penalty 0" generate -m "$MODEL" -p hi --repeat-penalty 0
expect_error "generate: --repeat-last-n negative" generate -m "$MODEL" -p hi --repeat-last-n -1
LM_KERNELS=avx9 expect_error_matching "LM_KERNELS not a level" "LM_KERNELS: kernel level 'avx9'" generate -m "$MODEL" -p hi
expect_error "generate: unknown option" generate -m "$MODEL" -p hi --bogus
expect_error "generate: missing value" generate -m "$MODEL" -p
expect_error "perplexity: missing model" perplexity -m "$tmp/nope" -f "$tmp/text.txt"
expect_error "perplexity: no -f" perplexity -m "$MODEL"
expect_error "perplexity: missing text file" perplexity -m "$MODEL" -f "$tmp/nope.txt"
expect_error "perplexity: empty text file" perplexity -m "$MODEL" -f "$tmp/empty.txt"
expect_error "perplexity: one token, nothing to score" perplexity -m "$MODEL" -f "$tmp/one_token.txt"
expect_error "perplexity: text longer than the limit" perplexity -m "$MODEL" -f "$tmp/huge.txt"
expect_error "perplexity: --ctx 1" perplexity -m "$MODEL" -f "$tmp/text.txt" --ctx 1
expect_error "perplexity: --ctx not a number" perplexity -m "$MODEL" -f "$tmp/text.txt" --ctx 12x
expect_error "perplexity: unknown option" perplexity -m "$MODEL" -f "$tmp/text.txt" --bogus
grep -q 'nothing to score' <("$BIN" perplexity -m "$MODEL" -f "$tmp/empty.txt" 2>&1) || { echo "FAIL: empty file message"; fail=1; }
exit $fail
