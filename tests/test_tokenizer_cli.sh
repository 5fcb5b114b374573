# lightmamba tokenize: the WikiText-2 test file -> exactly the reference ids (-o and stdout),
# --decode back to the text, an empty file -> zero ids, and bad input -> one error line,
# a non-zero exit and no output file (not even a temporary one).
set -u
BIN=${LM_BIN:?LM_BIN not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
TMP=$(mktemp -d /tmp/lm_test_tokenize_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# Runs the command expecting failure: exit status non-zero, stderr exactly one line
# "lightmamba: error: ..." that contains $1, and nothing left in $TMP/out*.
expect_error() {
    local want=$1; shift
    "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    local rc=$?
    [ $rc -ne 0 ] || fail "'$*' exited 0"
    [ "$(wc -l <"$TMP/stderr")" -eq 1 ] || fail "'$*': stderr is not one line: $(cat "$TMP/stderr")"
    grep -q "^lightmamba: error: .*$want" "$TMP/stderr" || fail "'$*': error does not mention '$want': $(cat "$TMP/stderr")"
    [ ! -s "$TMP/stdout" ] || fail "'$*' wrote to stdout"
    if compgen -G "$TMP/out*" >/dev/null; then fail "'$*' left $(ls "$TMP"/out*)"; rm -f "$TMP"/out*; fi
    echo "ok (error): $(cat "$TMP/stderr")"
}

TEXT=$ROOT/data/wikitext2_test.txt
REF=$ROOT/data/wikitext2_test.tokens.i32

# The whole file, as int32 little-endian, byte for byte the reference.
"$BIN" tokenize -f "$TEXT" -o "$TMP/wiki.i32" 2>"$TMP/summary" || fail "tokenize wikitext exited non-zero"
cmp -s "$TMP/wiki.i32" "$REF" || fail "tokenize -o: ids differ from $REF"
grep -q "285831 tokens" "$TMP/summary" || fail "summary does not say 285831 tokens: $(cat "$TMP/summary")"
cat "$TMP/summary"

# As text on stdout: one line of the same ids.
"$BIN" tokenize -f "$TEXT" >"$TMP/wiki.txt" 2>/dev/null || fail "tokenize to stdout exited non-zero"
[ "$(wc -l <"$TMP/wiki.txt")" -eq 1 ] || fail "stdout ids are not one line"
od -An -v -t d4 "$REF" | tr -s ' \n' '\n\n' | sed '/^$/d' | paste -sd' ' >"$TMP/ref.txt"
cmp -s "$TMP/wiki.txt" "$TMP/ref.txt" || fail "tokenize to stdout: ids differ from the reference"

# --decode: ids back to the exact text.
"$BIN" tokenize --decode -f "$REF" -o "$TMP/decoded.txt" || fail "--decode exited non-zero"
cmp -s "$TMP/decoded.txt" "$TEXT" || fail "--decode of the reference ids is not the text"

printf 'Hello world<|endoftext|>' >"$TMP/hello.txt"
[ "$("$BIN" tokenize -f "$TMP/hello.txt" 2>/dev/null)" = "12092 1533 0" ] || fail "'Hello world<|endoftext|>' is not 12092 1533 0"

# An empty file is a valid text of zero tokens: an empty ids file, an empty line on stdout.
: >"$TMP/empty.txt"
"$BIN" tokenize -f "$TMP/empty.txt" -o "$TMP/empty.i32" 2>/dev/null || fail "empty text exited non-zero"
[ -f "$TMP/empty.i32" ] && [ ! -s "$TMP/empty.i32" ] || fail "empty text: ids file missing or not empty"
[ "$("$BIN" tokenize -f "$TMP/empty.txt" 2>/dev/null)" = "" ] || fail "empty text: stdout not empty"

# Bad input.
printf 'abc\xc3' >"$TMP/bad_utf8.txt"
printf '\x01\x02\x03\x04\x05' >"$TMP/odd.i32"
printf '\xff\xff\xff\x7f' >"$TMP/big_id.i32"
expect_error "cannot open $TMP/missing.txt" "$BIN" tokenize -f "$TMP/missing.txt" -o "$TMP/out.i32"
expect_error "invalid UTF-8 at byte offset 3" "$BIN" tokenize -f "$TMP/bad_utf8.txt" -o "$TMP/out.i32"
expect_error "not a whole number of int32" "$BIN" tokenize --decode -f "$TMP/odd.i32" -o "$TMP/out.txt"
expect_error "token id 2147483647" "$BIN" tokenize --decode -f "$TMP/big_id.i32" -o "$TMP/out.txt"
expect_error "cannot open $TMP/missing.json" "$BIN" tokenize -f "$TMP/hello.txt" --tokenizer "$TMP/missing.json" -o "$TMP/out.i32"
expect_error "$TMP/no/such/dir/out.i32" "$BIN" tokenize -f "$TMP/hello.txt" -o "$TMP/no/such/dir/out.i32"
expect_error "-f FILE is required" "$BIN" tokenize -o "$TMP/out.i32"
expect_error "bogus" "$BIN" tokenize -f "$TMP/hello.txt" --bogus

"$BIN" help tokenize | grep -q -- "--decode" || fail "'help tokenize' does not document --decode"

[ $fails -eq 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "all tokenize CLI checks passed"
