#!/usr/bin/env bash
# The main job on the offline default model: set up, index sample media, search it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
samples=indexes/samples
index=indexes/demo
.venv/bin/python scripts/make_samples.py "$samples"
mm() { echo; echo "\$ mmsearch $*"; .venv/bin/mmsearch "$@"; }
mm index "$samples" --index "$index"
mm info --index "$index"
mm search "a cat" --index "$index" -k 3
mm search "a cup of coffee" --index "$index" -k 3
mm search "a rocket launch" --index "$index" -k 3
mm search "how to bake bread" --index "$index" -k 3
mm search "galaxies in deep space" --index "$index" -k 3
mm search "rain" --index "$index" -k 3
mm search "water the tomatoes" --index "$index" -k 3
mm search --audio "$samples/sounds/rain-on-the-roof.ogg" --index "$index" -k 2
mm search --image "$samples/photos/chelsea-the-cat.jpg" --index "$index" -k 3
mm search "a cat" --index "$index" -k 2 --json
