#!/usr/bin/env bash
# lightmamba perplexity on WikiText-2 test, ../shared/models/mamba2-small (checks in model_perplexity.sh).
set -u
source "$(dirname "$0")/model_perplexity.sh"
if [ ! -d "${LM_SHARED:-/nonexistent}/models/mamba2-small" ]; then
    echo "SKIP: the mamba2-small perplexity test needs ../shared beside the checkout (not found)"
    exit 77
fi
check_perplexity "$LM_SHARED/models/mamba2-small"
exit $fail
