#!/usr/bin/env bash
# lightmamba perplexity on WikiText-2 test, the bundled tiny model (checks in model_perplexity.sh).
set -u
source "$(dirname "$0")/model_perplexity.sh"
check_perplexity "$ROOT/models/mamba2-tiny"
exit $fail
