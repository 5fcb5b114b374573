#!/usr/bin/env bash
# The layer rule of docs/architecture.md: a file may include headers of its own folder and of
# the folders below it, never above. Fails naming each include that points up (or sideways).
set -u
cd "${LM_ROOT:?}"
# folder -> layer; folders on one layer may not include each other
declare -A LAYER=([common]=0 [kernels]=1 [integer]=2 [format]=3 [tokenizer]=3 [model]=4 [quant]=5
                  [sim]=6 [hk]=6 [cli]=7)
folder_of() {   # path of a source file -> its folder's name in LAYER
  case "$1" in
    src/*) d=${1#src/}; echo "${d%%/*}" ;;
    hw/sim/*) echo sim ;;
    hw/kernels/*) echo hk ;;
  esac
}
bad=0; n=0
while IFS= read -r f; do
  from=$(folder_of "$f"); [ -n "${LAYER[$from]+x}" ] || { echo "FAIL: $f is in no layer"; bad=1; continue; }
  while IFS= read -r inc; do
    n=$((n + 1))
    case "$inc" in
      lightmamba.h) continue ;;                      # the public API: every layer may use it
      */*) to=${inc%%/*} ;;
      *) to=$from ;;                                 # a header beside the file
    esac
    if [ -z "${LAYER[$to]+x}" ]; then echo "FAIL: $f includes \"$inc\": no such layer"; bad=1
    elif [ "$to" != "$from" ] && [ "${LAYER[$to]}" -ge "${LAYER[$from]}" ]; then
      echo "FAIL: $f (layer ${LAYER[$from]}, $from) includes \"$inc\" (layer ${LAYER[$to]}, $to)"; bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find src hw -name '*.[ch]' | sort)
[ "$bad" -eq 0 ] && echo "layers: $n includes checked, none points up"
exit "$bad"
