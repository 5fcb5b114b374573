# Sourced first by the CLI tests: strict variables, $BIN (the lightmamba binary), $ROOT
# (the checkout), $MODEL (the bundled tiny model), fail=0, a scratch directory $tmp removed on exit,
# the expect_error helpers (cli_expect.sh) and json_number KEY JSON (the number after "KEY": in JSON).
set -u
BIN=${LM_BIN:?LM_BIN not set}
ROOT=${LM_ROOT:?LM_ROOT not set}
MODEL=$ROOT/models/mamba2-tiny
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/cli_expect.sh"
json_number() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" <<<"$2"; }
