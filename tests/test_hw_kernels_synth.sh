#!/usr/bin/env bash
# The HLS kernels (hw/kernels, all but the host-side hk_host.*) stay in the subset Vitis HLS
# synthesizes: no dynamic memory, I/O, process control, recursion, variable-length arrays or
# floating point; every loop has a compile-time bound or a loop_tripcount pragma; the sources
# compile warning-free as C11 and as C++ (the HLS front end) with the hls::stream mapping of
# hk_stream.h. What this cannot check without Vitis HLS: achieved II, resources, the dataflow
# checks of the HLS compiler (see hw/README.md, "Kernels").
set -u
root=${LM_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
dir=$root/hw/kernels
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && echo 'int f(void) { return 0; }' > probe.c && $cc -fcallgraph-info -fstack-usage -c probe.c 2> /dev/null); then
    echo "SKIP: $cc lacks -fcallgraph-info / -fstack-usage (GCC 10 or later needed)"; exit 77
fi
fail=0
err() { echo "FAIL: $*"; fail=1; }

srcs=()
for f in "$dir"/hk_*.c "$dir"/hk_*.h; do
    case $(basename "$f") in hk_host.*) ;; *) srcs+=("$f") ;; esac
done
ksrc=()
for f in "$dir"/hk_*.c; do case $(basename "$f") in hk_host.c) ;; *) ksrc+=("$f") ;; esac; done
[ ${#srcs[@]} -ge 6 ] || { echo "FAIL: kernel sources not found in $dir"; exit 1; }

# 1. forbidden constructs (comments stripped first)
strip() { sed -e 's://.*$::' "$1" | perl -0pe 's:/\*.*?\*/::gs'; }
for f in "${srcs[@]}"; do
    body=$(strip "$f")
    hits=$(printf '%s\n' "$body" | grep -nE '\b(malloc|calloc|realloc|free|alloca|printf|fprintf|puts|fopen|exit|abort|setjmp|longjmp|goto|float|double|__int128|pthread_[a-z_]+)\b' || true)
    [ -z "$hits" ] || err "$(basename "$f"): not synthesizable here: $hits"
    incs=$(printf '%s\n' "$body" | grep -E '^\s*#\s*include' | grep -vE '#\s*include\s*("hk(_[a-z_]+)?\.h"|<stdint\.h>|<hls_stream\.h>)' || true)
    [ -z "$incs" ] || err "$(basename "$f"): includes outside the kernels: $incs"
done

# 2. loops: a compile-time bound (HK_* constants, literals) or a loop_tripcount pragma in the loop's own
#    first two lines
for f in "${srcs[@]}"; do
    out=$(awk -v F="$(basename "$f")" '
        { line[NR] = $0 }
        END {
            for (i = 1; i <= NR; i++) {
                if (line[i] !~ /for \(/) continue
                cond = line[i]; sub(/^[^;]*;/, "", cond); sub(/;.*$/, "", cond)
                bound = cond
                if (sub(/^ *[a-z_][a-z0-9_]* *< */, "", bound)) {     # "i < BOUND": only HK_* macros, literals
                    gsub(/HK_[A-Z0-9_]+/, "", bound); gsub(/[0-9 ()+*\/-]/, "", bound)
                    if (bound == "") continue
                }
                ok = 0
                for (j = i + 1; j <= i + 2 && j <= NR && line[j] !~ /for \(/; j++) if (line[j] ~ /loop_tripcount/) ok = 1
                if (!ok) print F ":" i ": loop bound \"" cond "\" is not static and has no loop_tripcount"
            }
        }' "$f")
    [ -z "$out" ] || err "$out"
done

# 3. compile: C11 warning-free, no VLA, stack usage static; call graph acyclic (no recursion); for
#    both datapaths (HK_DATAPATH 0: ours, 63: the release's)
for dp in 63 0; do
for f in "${ksrc[@]}"; do
    b=$(basename "$f" .c)
    if ! (cd "$tmp" && $cc -std=c11 -O0 -c -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Wvla -Werror=vla -Werror \
            -DHK_KEEP_PRAGMAS -DHK_DATAPATH=$dp -fstack-usage -fcallgraph-info -I"$dir" "$f" -o "$b.o" 2> "$b.err"); then
        err "$b.c (HK_DATAPATH $dp) does not compile cleanly: $(head -5 "$tmp/$b.err")"
        continue
    fi
    dyn=$(grep -E 'dynamic$' "$tmp/$b.su" || true)     # "dynamic,bounded" is -O0 argument copying
    [ -z "$dyn" ] || err "$b.c (HK_DATAPATH $dp): unbounded stack allocation: $dyn"
done
done
# call graph edges "caller callee" from the .ci files (VCG), self loops included; tsort reports cycles
grep -h 'edge:' "$tmp"/hk_*.ci 2>/dev/null | sed -E 's/.*sourcename: "([^"]+)".*targetname: "([^"]+)".*/\1 \2/' \
    | sed -E 's/[^ ]*:([^: ]+) /\1 /; s/ [^ ]*:([^: ]+)$/ \1/' > "$tmp/edges"
[ -s "$tmp/edges" ] || err "no call graph produced (-fcallgraph-info)"
awk '$1 == $2 { print "FAIL: recursion: " $1 }' "$tmp/edges" | grep . && fail=1
if ! tsort "$tmp/edges" > /dev/null 2> "$tmp/tsort.err"; then err "recursion in the call graph: $(cat "$tmp/tsort.err")"; fi

# 4. the pragmas are well formed after preprocessing (constants expanded, one per directive)
n=$(cat "${ksrc[@]}" "$dir"/hk_prim.h | grep -c 'HK_PRAGMA(HLS')
np=$(for f in "${ksrc[@]}"; do $cc -E -DHK_KEEP_PRAGMAS -I"$dir" "$f"; done | grep -cE '^#pragma HLS (pipeline|unroll|array_partition|loop_tripcount|dataflow|stream|interface|allocation)')
[ "$np" -ge "$n" ] || err "only $np of $n HLS pragmas survive preprocessing"
left=$(for f in "${ksrc[@]}"; do $cc -E -DHK_KEEP_PRAGMAS -I"$dir" "$f"; done | grep -E '^#pragma HLS' | grep -E 'HK_[A-Z_]' || true)
[ -z "$left" ] || err "unexpanded constants in pragmas: $(echo "$left" | head -3)"

# 5. C++ (the HLS front end) with hk_stream.h mapped to hls::stream (a declaration-only stand-in)
if command -v ${CXX:-c++} > /dev/null; then
    mkdir -p "$tmp/hls"
    cat > "$tmp/hls/hls_stream.h" <<'H'
namespace hls {
template <typename T> class stream {
public:
    void write(const T &v);
    T read();
    bool empty();
    int size();
};
}
H
    for dp in 0 63; do
        for f in "${ksrc[@]}"; do
            ${CXX:-c++} -std=c++14 -fsyntax-only -x c++ -D__SYNTHESIS__ -DHK_DATAPATH=$dp -Wall -Wno-unknown-pragmas -Wno-unused-function -Werror \
                -I"$tmp/hls" -I"$dir" "$f" 2> "$tmp/cxx.err" || err "$(basename "$f") (HK_DATAPATH $dp) is not valid C++ for the HLS front end: $(head -5 "$tmp/cxx.err")"
        done
    done
else
    echo "note: no C++ compiler, C++ front-end check skipped"
fi

[ $fail -eq 0 ] && echo "hw/kernels: synthesizable-subset checks passed (${#srcs[@]} files)"
exit $fail
