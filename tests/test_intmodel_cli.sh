# LightMamba* through the CLI on the bundled tiny model: quantize --ssm pot8 (W4A4 LightMamba and
# the float-SSM LightMamba W4A4 beside it, the same calibration), perplexity of the integer model
# within 10 % of the float-SSM one on a WikiText-2 prefix, generate identical over thread
# counts, vectors writes a manifest and its files; the release datapath (--datapath release) the
# same way, its manifest naming it; bad --ssm, --datapath and vectors arguments are refused with
# one error line, a non-zero exit and no output left behind.
set -euo pipefail
: "${LM_BIN:?}" "${LM_ROOT:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model="$LM_ROOT/models/mamba2-tiny"
bytes=12000
[ "${LM_SANITIZE:-0}" = 1 ] && bytes=3000   # ASan+UBSan: a shorter prefix
head -c "$bytes" "$LM_ROOT/data/wikitext2_test.txt" > "$tmp/text.txt"
fail() { echo "FAIL: $*" >&2; exit 1; }
ppl() { "$LM_BIN" perplexity -m "$1" -f "$tmp/text.txt" --threads 2 --json | sed -n 's/.*"ppl": \([0-9.eE+-]*\).*/\1/p'; }
calib=(--calib-samples 8 --calib-len 128 --threads 2)

"$LM_BIN" quantize -m "$model" -o "$tmp/star.lmq" --ssm pot8 "${calib[@]}" 2> "$tmp/progress.txt" > "$tmp/out.txt"
grep -q "integer calibration: 8/8" "$tmp/progress.txt" || fail "no integer calibration progress"
grep -q "wrote $tmp/star.lmq: lightmamba W4A4 ssm pot8" "$tmp/out.txt" || fail "no summary: $(cat "$tmp/out.txt")"
"$LM_BIN" quantize -m "$model" -o "$tmp/lm.lmq" "${calib[@]}" 2> /dev/null > /dev/null
"$LM_BIN" info -m "$tmp/star.lmq" > "$tmp/info.txt"
grep -q "mixer.int.lut.value .*I16 *\[4, 4096\]" "$tmp/info.txt" || fail "info does not list the LUTs"

s=$(ppl "$tmp/star.lmq"); l=$(ppl "$tmp/lm.lmq")
echo "ppl on $bytes bytes: LightMamba W4A4 $l, LightMamba* W4A4 (pot8) $s"
awk -v s="$s" -v l="$l" 'BEGIN { exit !(s > 0 && s < l * 1.10 && s > l * 0.90) }' || fail "pot8 ppl $s not within 10 % of $l"

g1=$("$LM_BIN" generate -m "$tmp/star.lmq" -p "The history of the city" -n 12 --temp 0 --threads 1 2> /dev/null)
g2=$("$LM_BIN" generate -m "$tmp/star.lmq" -p "The history of the city" -n 12 --temp 0 --threads 2 2> /dev/null)
[ "${#g1}" -gt 24 ] || fail "generate produced nothing"
[ "$g1" = "$g2" ] || fail "generate differs between 1 and 2 threads: '$g1' vs '$g2'"

"$LM_BIN" vectors -m "$tmp/star.lmq" -p "The history of the city" -o "$tmp/vec" --layer 3 > "$tmp/out.txt"
grep -q "wrote $tmp/vec: layer 3" "$tmp/out.txt" || fail "vectors: no summary: $(cat "$tmp/out.txt")"
grep -q '"name": "ssm.state_out.q", "dtype": "int8", "shape": \[256, 128\]' "$tmp/vec/manifest.json" || fail "vectors: no ssm.state_out.q in the manifest"
[ "$(stat -c %s "$tmp/vec/ssm.state_out.q.int8")" -eq $((256 * 128)) ] || fail "vectors: ssm.state_out.q has the wrong size"
n_files=$(ls "$tmp/vec" | grep -vc manifest.json)
n_listed=$(grep -c '"file"' "$tmp/vec/manifest.json")
[ "$n_files" -eq "$n_listed" ] || fail "vectors: $n_files files, $n_listed listed"
ls "$tmp" | grep -q "vec.tmp" && fail "vectors left its temporary directory"

"$LM_BIN" quantize -m "$model" -o "$tmp/rel.lmq" --ssm pot8 --datapath release "${calib[@]}" 2> /dev/null > "$tmp/out.txt"
grep -q "ssm pot8 datapath release" "$tmp/out.txt" || fail "no release summary: $(cat "$tmp/out.txt")"
r=$(ppl "$tmp/rel.lmq")
echo "ppl on $bytes bytes: LightMamba* W4A4, release datapath $r"
awk -v r="$r" -v s="$s" 'BEGIN { exit !(r > 0 && r < s * 2) }' || fail "release ppl $r is not a working model (ours $s)"
"$LM_BIN" vectors -m "$tmp/rel.lmq" -p "The history of the city" -o "$tmp/vrel" --layer 0 > /dev/null
grep -q '"datapath": "release"' "$tmp/vrel/manifest.json" || fail "vectors: the manifest does not name the release datapath"
grep -q '"contract": "docs/release-datapath.md"' "$tmp/vrel/manifest.json" || fail "vectors: wrong contract"
grep -q '"name": "param.gnorm.rsqrt8.value", "dtype": "uint8", "shape": \[8, 512\]' "$tmp/vrel/manifest.json" ||
    fail "vectors: no release norm tables"

# Bad input: one error line, non-zero exit, nothing left behind.
expect_error() {
    local want="$1"; shift
    if "$LM_BIN" "$@" > /dev/null 2> "$tmp/err.txt"; then fail "accepted: $*"; fi
    [ "$(wc -l < "$tmp/err.txt")" -eq 1 ] || fail "not one error line for: $*: $(cat "$tmp/err.txt")"
    grep -q -e "$want" "$tmp/err.txt" || fail "error for '$*' lacks '$want': $(cat "$tmp/err.txt")"
    [ ! -e "$tmp/bad" ] || fail "output left behind by: $*"
}
expect_error "unknown --ssm 'int4'" quantize -m "$model" -o "$tmp/bad" --ssm int4
expect_error "datapath needs --ssm pot8" quantize -m "$model" -o "$tmp/bad" --datapath release
expect_error "datapath 'fast'" quantize -m "$model" -o "$tmp/bad" --ssm pot8 --datapath fast
expect_error "no 8-bit linear inputs" quantize -m "$model" -o "$tmp/bad" --ssm pot8 --datapath release --wbits 8 --abits 8
expect_error "layer 4 is out of range" vectors -m "$tmp/star.lmq" -p "Hello" -o "$tmp/bad" --layer 4
expect_error "not an integer model" vectors -m "$tmp/lm.lmq" -p "Hello" -o "$tmp/bad"
expect_error "already exists" vectors -m "$tmp/star.lmq" -p "Hello" -o "$tmp/vec"
expect_error "prompt is empty" vectors -m "$tmp/star.lmq" -p "" -o "$tmp/bad"
expect_error "-o DIR is required" vectors -m "$tmp/star.lmq" -p "Hello"
expect_error "-p PROMPT is required" vectors -m "$tmp/star.lmq" -o "$tmp/bad"
expect_error "no such\|cannot\|No such" vectors -m "$tmp/missing.lmq" -p "Hello" -o "$tmp/bad"
expect_error "layer" vectors -m "$tmp/star.lmq" -p "Hello" -o "$tmp/bad" --layer -1
echo "ok"
