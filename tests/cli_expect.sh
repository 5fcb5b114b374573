# Sourced by the CLI tests. Needs $BIN (the lightmamba binary) and $tmp (a scratch directory);
# sets fail=1 on a failed check.
#   expect_error WHAT ARGS...                  bad input: lightmamba ARGS exits with status 1,
#   expect_error_matching WHAT PATTERN ARGS... writes nothing to stdout and exactly one stderr line
#                                              "lightmamba: error: ..." (containing PATTERN)
expect_error_matching() {
    local what=$1 want=$2; shift 2
    "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -ne 1 ]; then echo "FAIL: $what: exit status $rc (want 1)"; fail=1; fi
    if [ -s "$tmp/out" ]; then echo "FAIL: $what: wrote to stdout"; fail=1; fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q '^lightmamba: error: ' "$tmp/err" || ! grep -q -e "$want" "$tmp/err"; then
        echo "FAIL: $what: stderr is not one error line${want:+ with '$want'}:"; cat "$tmp/err"; fail=1
    else
        echo "ok: $what: $(cat "$tmp/err")"
    fi
}

expect_error() { local what=$1; shift; expect_error_matching "$what" '' "$@"; }
