#!/bin/bash
# lightmamba sim: output of a good run, the SVG timeline, and a one-line error for each kind of bad input.
set -u
BIN=${LM_BIN:?LM_BIN not set}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

# expect_error NAME PATTERN ARGS...: non-zero exit, one line on stderr naming the problem, nothing on stdout
expect_error() {
    local name=$1 pat=$2; shift 2
    "$BIN" sim "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    check "$name: exit status $rc" "[ $rc -ne 0 ] && [ $rc -lt 128 ]"
    check "$name: one line on stderr: $(cat "$TMP/err")" "[ \$(wc -l <'$TMP/err') -eq 1 ]"
    check "$name: message '$pat' in: $(cat "$TMP/err")" "grep -q -- '$pat' '$TMP/err'"
    check "$name: no output on stdout" "[ ! -s '$TMP/out' ]"
}

"$BIN" sim --platform vck190 --config mamba2-2.7b >"$TMP/out" 2>"$TMP/err"
check "good run exits 0: $(cat "$TMP/err")" "[ $? -eq 0 ]"
for key in "tokens/s" "cycles/layer" "bytes/token" "bandwidth" "MMU" "compute time" "on-chip memory" "logic estimate" "energy"; do
    check "output has '$key'" "grep -q '$key' '$TMP/out'"
done
"$BIN" sim --platform u280 --config mamba2-130m --wbits 8 --no-reorder --no-tiling --json >"$TMP/json" 2>"$TMP/err"
check "json run exits 0" "[ $? -eq 0 ]"
check "json has tokens_per_s" "grep -q '\"tokens_per_s\"' '$TMP/json'"
if command -v python3 >/dev/null; then
    check "json parses" "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"design\"][\"wbits\"]==8 and not d[\"design\"][\"reorder\"] and 0 < d[\"compute_only\"][\"cycles_token\"] <= d[\"cycles_token\"]' '$TMP/json'"
fi
"$BIN" sim --platform vck190 --config mamba2-130m --svg "$TMP/t.svg" >/dev/null 2>"$TMP/err"
check "svg run exits 0: $(cat "$TMP/err")" "[ $? -eq 0 ]"
check "svg written" "head -c 4 '$TMP/t.svg' | grep -q '<svg' && tail -1 '$TMP/t.svg' | grep -q '</svg>'"
check "svg has the MMU row" "grep -q '>MMU<' '$TMP/t.svg'"
"$BIN" sim --explore --platform vck190 --config mamba2-130m >"$TMP/out" 2>"$TMP/err"
check "explore exits 0: $(cat "$TMP/err")" "[ $? -eq 0 ]"
check "explore prints designs" "grep -q 'tok/s' '$TMP/out' && [ \$(wc -l <'$TMP/out') -ge 3 ]"

# bad input
expect_error "unknown platform" "unknown platform .zynq" --platform zynq --config mamba2-2.7b
expect_error "missing platform file" "cannot open" --platform "$TMP/none.json" --config mamba2-2.7b
printf '{"name": "x", "clock_mhz": ' >"$TMP/trunc.json"
expect_error "truncated platform JSON" "incomplete JSON" --platform "$TMP/trunc.json" --config mamba2-2.7b
sed 's/"efficiency": [0-9.]*,//' "$LM_ROOT/hw/platforms/vck190.json" >"$TMP/noeff.json"
expect_error "missing key" 'missing key "efficiency"' --platform "$TMP/noeff.json" --config mamba2-2.7b
sed 's/"channels": 1,/"chanels": 1,/' "$LM_ROOT/hw/platforms/vck190.json" >"$TMP/typo.json"
expect_error "misspelt key" 'unknown key "chanels"' --platform "$TMP/typo.json" --config mamba2-2.7b
sed 's/"efficiency": [0-9.]*,/"efficiency": 2,/' "$LM_ROOT/hw/platforms/vck190.json" >"$TMP/range.json"
expect_error "out-of-range value" "efficiency = 2 is out of range" --platform "$TMP/range.json" --config mamba2-2.7b
sed 's/"n_p": 8,/"n_p": 48,/' "$LM_ROOT/hw/platforms/vck190.json" >"$TMP/tile.json"
expect_error "tile not dividing the state" "does not divide" --platform "$TMP/tile.json" --config mamba2-2.7b
expect_error "unknown config" "unknown model config .mamba2-9b" --platform vck190 --config mamba2-9b
mkdir -p "$TMP/model" && echo '{"hidden_size": 64' >"$TMP/model/config.json"
expect_error "bad model config.json" "config.json" --platform vck190 --config "$TMP/model"
expect_error "bad wbits" "wbits" --platform vck190 --config mamba2-2.7b --wbits 5
expect_error "missing --config" "--config" --platform vck190
expect_error "svg into a missing folder" "$TMP/nodir" --platform vck190 --config mamba2-130m --svg "$TMP/nodir/t.svg"
check "no partial svg left" "[ ! -e '$TMP/nodir' ] && [ -z \"\$(ls '$TMP' | grep tmp)\" ]"
exit $fail
