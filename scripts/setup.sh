#!/usr/bin/env bash
# Installs the build dependencies (Debian packages) when missing and builds into build/
# (or build-sanitize/ with --sanitize, or the libFuzzer harnesses into build-fuzz/ with --fuzz:
# clang and its runtimes are then installed too). Called by demo.sh, test.sh and fuzz.sh; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential cmake pkg-config libjson-c-dev libutf8proc-dev libpcre2-dev libopenblas-dev libminizip-dev"
[ "${1:-}" = "--fuzz" ] && PKGS="$PKGS clang libclang-rt-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

BUILD=build; FLAGS=""; TARGET=all
if [ "${1:-}" = "--sanitize" ]; then BUILD=build-sanitize; FLAGS="-DLM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"; fi
if [ "${1:-}" = "--fuzz" ]; then BUILD=build-fuzz; FLAGS="-DCMAKE_C_COMPILER=clang -DLM_FUZZ=ON"; TARGET=fuzzers; fi
mkdir -p "$BUILD"
if ! { cmake -S . -B "$BUILD" $FLAGS && cmake --build "$BUILD" -j"$(nproc)" --target "$TARGET"; } >"$BUILD/build.log" 2>&1; then
  cat "$BUILD/build.log" >&2
  echo "setup: build failed (log above, also in $BUILD/build.log)" >&2
  exit 1
fi
echo "$BUILD"
