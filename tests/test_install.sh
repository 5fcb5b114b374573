#!/usr/bin/env bash
# The installed library. `cmake --install` of this build into a scratch prefix, which is then moved
# (nothing may depend on where it was installed), and from a folder outside the checkout:
# - the shared library exports exactly the LM_API functions of the installed lightmamba.h, under
#   the SONAME liblightmamba.so.MAJOR.MINOR; the version is the same everywhere;
# - no path of the checkout is compiled into the installed binaries;
# - tests/install_consumer.c built against the install with `pkg-config --cflags --libs` (shared),
#   `pkg-config --static --libs` (static archive) and CMake's find_package reproduces the bundled
#   tiny model's reference greedy continuation (transformers' ids);
# - the installed CLI finds its bundled data (tokenizer, calibration text, platforms) in the moved
#   prefix: generate gives the same text, quantize calibrates, sim loads a platform; the same (and
#   the consumer) with the checkout and the build folder hidden; without the prefix's
#   share/lightmamba it fails with one error line.
set -u
ROOT=${LM_ROOT:?LM_ROOT not set}
BUILD=${LM_BUILD:?LM_BUILD not set}
CC=${LM_CC:-cc}
CMAKE=${LM_CMAKE:-cmake}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for tool in pkg-config nm readelf strings "$CC" "$CMAKE"; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

check() {  # description, condition command...
    local what=$1; shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
# The ASan+UBSan build's library needs its runtime in every program that loads it.
SAN=""
[ "${LM_SANITIZE:-0}" = 1 ] && SAN="-fsanitize=address,undefined"

# --- install, then move the prefix ---
if ! "$CMAKE" --install "$BUILD" --prefix "$tmp/installed" >"$tmp/install.log" 2>&1; then
    echo "FAIL: cmake --install:"; cat "$tmp/install.log"; exit 1
fi
mv "$tmp/installed" "$tmp/prefix"
P=$tmp/prefix
mkdir "$tmp/model" "$tmp/work"
cp "$ROOT/models/mamba2-tiny/config.json" "$ROOT/models/mamba2-tiny/model.safetensors" "$tmp/model/"
cp "$ROOT/tests/install_consumer.c" "$tmp/work/"
cd "$tmp/work" || exit 1
export PKG_CONFIG_PATH=$P/lib/pkgconfig

# --- the ABI: exported symbols, SONAME, version ---
sed -n 's/^LM_API .*[ *]\(lm_[a-z0-9_]*\)(.*/\1/p' "$P/include/lightmamba.h" | sort >"$tmp/declared"
grep -E '^[a-z].*[ *]lm_[a-z0-9_]+\(' "$P/include/lightmamba.h" | grep -v '^typedef' >"$tmp/unmarked"
check "every function of lightmamba.h is marked LM_API ($(wc -l <"$tmp/declared") functions)" test ! -s "$tmp/unmarked"
nm -D --defined-only "$P/lib/liblightmamba.so" | awk '{print $NF}' | sort >"$tmp/exported"
check "liblightmamba.so exports exactly the LM_API functions" cmp -s "$tmp/declared" "$tmp/exported"
comm -23 "$tmp/declared" "$tmp/exported" | sed 's/^/  declared, not exported: /'
comm -13 "$tmp/declared" "$tmp/exported" | sed 's/^/  exported, not declared: /'
version=$(sed -n 's/^project(lightmamba VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
soname=$(readelf -d "$P/lib/liblightmamba.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "SONAME $soname for version $version" test "$soname" = "liblightmamba.so.${version%.*}"
check "pkg-config --modversion is $version" test "$(pkg-config --modversion lightmamba)" = "$version"
check "lightmamba --version is $version" test "$("$P/bin/lightmamba" --version)" = "lightmamba $version"

# --- no path of the checkout or the build folder in what is installed ---
# (not in the ASan+UBSan build: GCC writes the sanitizers' source locations unmapped by
# -ffile-prefix-map, and that build is for testing, not installing)
root_real=$(cd "$ROOT" && pwd -P); build_real=$(cd "$BUILD" && pwd -P)
for f in "$P/bin/lightmamba" "$P"/lib/liblightmamba.so.*.*.* "$P/lib/liblightmamba.a"; do
    [ -n "$SAN" ] && { echo "note: sanitizer build, path check of $(basename "$f") skipped"; continue; }
    n=$(strings "$f" | grep -c -F -e "$root_real" -e "$build_real" -e "$ROOT" -e "$BUILD")
    check "$(basename "$f") holds no path of the checkout" test "$n" -eq 0
done

# --- a program outside the tree, built against the install ---
ref=$ROOT/models/mamba2-tiny/reference/reference.json
want_ids=$(tr -d ' \n' <"$ref" | sed -n 's/.*"greedy_ids":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' ')
prompt=$(sed -n 's/.*"greedy_prompt": *"\([^"]*\)".*/\1/p' "$ref")
n_prompt=$(tr -d ' \n' <"$ref" | sed -n 's/.*"greedy_prompt_ids":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' ' | wc -w)
n_gen=$(($(wc -w <<<"$want_ids") - n_prompt))
consumer_ok() {  # name, output file: version line, then the reference ids
    local out=$2
    if [ "$(sed -n 1p "$out")" = "version $version" ] && [ "$(sed -n 2p "$out")" = "$want_ids" ] && [ "$n_gen" -gt 0 ]; then
        echo "ok: $1: the reference greedy continuation ($n_gen tokens)"
    else
        echo "FAIL: $1: want version $version and ids $want_ids, got:"; cat "$out" "$tmp/run.err"; fail=1
    fi
}
libs=$(pkg-config --libs lightmamba)
if $CC $SAN -o consumer install_consumer.c $(pkg-config --cflags lightmamba) $libs 2>"$tmp/cc.err"; then
    check "the pkg-config build links liblightmamba.so.${version%.*}" \
        grep -q "NEEDED.*\[liblightmamba.so.${version%.*}\]" <(readelf -d consumer)
    LD_LIBRARY_PATH=$P/lib ./consumer "$tmp/model" "$prompt" "$n_gen" >"$tmp/shared.out" 2>"$tmp/run.err"
    consumer_ok "shared library (pkg-config)" "$tmp/shared.out"
else
    echo "FAIL: building against pkg-config --cflags --libs lightmamba ($libs):"; cat "$tmp/cc.err"; fail=1
fi
static_libs=$(pkg-config --static --libs lightmamba)
static_libs=${static_libs/-llightmamba/-l:liblightmamba.a}
if $CC $SAN -o consumer_static install_consumer.c $(pkg-config --cflags lightmamba) $static_libs 2>"$tmp/cc.err"; then
    check "the static build needs no liblightmamba.so" test -z "$(readelf -d consumer_static | grep 'NEEDED.*liblightmamba')"
    ./consumer_static "$tmp/model" "$prompt" "$n_gen" "$P/share/lightmamba" >"$tmp/static.out" 2>"$tmp/run.err"
    consumer_ok "static library (pkg-config --static)" "$tmp/static.out"
else
    echo "FAIL: building against liblightmamba.a with pkg-config --static --libs ($static_libs):"; cat "$tmp/cc.err"; fail=1
fi
mkdir cmake-consumer
cp install_consumer.c cmake-consumer/
cat >cmake-consumer/CMakeLists.txt <<EOF
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(lightmamba $version REQUIRED)
add_executable(consumer install_consumer.c)
target_link_libraries(consumer PRIVATE lightmamba::lightmamba)
EOF
if "$CMAKE" -S cmake-consumer -B cmake-build -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$CC" \
       -DCMAKE_C_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" >"$tmp/cmake.log" 2>&1 &&
   "$CMAKE" --build cmake-build >>"$tmp/cmake.log" 2>&1; then
    cmake-build/consumer "$tmp/model" "$prompt" "$n_gen" >"$tmp/cmake.out" 2>"$tmp/run.err"
    consumer_ok "shared library (CMake find_package)" "$tmp/cmake.out"
else
    echo "FAIL: the CMake consumer:"; tail -20 "$tmp/cmake.log"; fail=1
fi

# --- the installed CLI, moved, run from outside the checkout ---
BIN=$P/bin/lightmamba
"$BIN" generate -m "$tmp/model" -p "$prompt" -n "$n_gen" --temp 0 --threads 2 >gen.txt 2>"$tmp/run.err"
check "installed generate: the consumer's text (bundled tokenizer found)" cmp -s gen.txt <(sed -n '3,$p' "$tmp/shared.out")
"$BIN" quantize -m "$tmp/model" -o q.lmq --method smoothquant --calib-samples 2 --calib-len 64 --threads 2 \
    >/dev/null 2>"$tmp/run.err"
check "installed quantize: calibrates on the bundled text" test -s q.lmq
"$BIN" sim --platform vck190 --config mamba2-130m --json >sim.json 2>"$tmp/run.err"
check "installed sim: loads the bundled vck190 platform" grep -q '"platform":"vck190"' sim.json

# --- the same with the checkout moved away: in a private mount namespace an empty tmpfs covers the
# build folder and the checkout, so for these programs both are gone (needs unprivileged user
# namespaces; skipped with a note where there are none or the scratch folder is inside the checkout) ---
hidden() {  # command...: run with the build folder and the checkout hidden
    unshare -rm sh -c 'mount -t tmpfs none "$1" && mount -t tmpfs none "$0" && shift && exec "$@"' \
        "$root_real" "$build_real" "$@"
}
case "$(cd "$tmp" && pwd -P)/" in
"$root_real"/* | "$build_real"/*) hide_ok=0 ;;
*) hidden test ! -e "$root_real/CMakeLists.txt" 2>/dev/null && hide_ok=1 || hide_ok=0 ;;
esac
if [ "$hide_ok" = 1 ]; then
    hidden "$BIN" generate -m "$tmp/model" -p "$prompt" -n "$n_gen" --temp 0 --threads 2 >gen_hidden.txt 2>"$tmp/run.err"
    check "checkout hidden: installed generate gives the same text" cmp -s gen_hidden.txt gen.txt
    hidden "$BIN" quantize -m "$tmp/model" -o q_hidden.lmq --method smoothquant --calib-samples 2 --calib-len 64 \
        --threads 2 >/dev/null 2>"$tmp/run.err"
    check "checkout hidden: installed quantize writes the same file" cmp -s q_hidden.lmq q.lmq
    hidden env LD_LIBRARY_PATH="$P/lib" ./consumer "$tmp/model" "$prompt" "$n_gen" >"$tmp/hidden.out" 2>"$tmp/run.err"
    consumer_ok "checkout hidden: shared library (pkg-config)" "$tmp/hidden.out"
else
    echo "note: cannot hide the checkout here (no unshare -rm, or the scratch folder is inside it): skipped"
fi
# Without the prefix's data the search ends at the configured install folder; skip this check if
# that exists on this machine (another install would answer).
installed_datadir=$(strings "$BIN" | grep -m1 '^/.*/share/lightmamba$')
if [ -n "$installed_datadir" ] && [ -e "$installed_datadir" ]; then
    echo "note: $installed_datadir exists here, the check without bundled data is skipped"
else
    mv "$P/share/lightmamba" "$P/share/elsewhere"
    "$BIN" generate -m "$tmp/model" -p "$prompt" -n 1 >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 1 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q 'tokenizer.json not found' "$tmp/err"; then
        echo "ok: without share/lightmamba: $(cat "$tmp/err")"
    else
        echo "FAIL: without share/lightmamba: exit $rc:"; cat "$tmp/out" "$tmp/err"; fail=1
    fi
fi
exit $fail
