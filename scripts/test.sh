#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, including the real offline models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Tests run with their own MMSEARCH_HOME, but share the converted-model cache setup made.
export MMSEARCH_CACHE_DIR="$PWD/indexes/models"
exec .venv/bin/python -m pytest -q "$@"
