#!/usr/bin/env bash
# The main job: sets up (installs dependencies, builds), then serves the
# bundled default model with a coordinator and local pipeline workers and
# generates a continuation of a prompt.
#
#   ./scripts/run.sh                      # default prompt
#   ./scripts/run.sh "Your prompt"        # your own prompt
#   ./scripts/run.sh "Your prompt" --temperature 0 --max_tokens 32   # any bitnet-serve flag
#
# MODEL=path.gguf serves another model; WORKERS=N sets the pipeline stages.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2

PROMPT=${1:-It is a truth universally acknowledged}
shift || true
MODEL=${MODEL:-models/austen-4m.gguf}
WORKERS=${WORKERS:-2}

echo "run: serving $MODEL with $WORKERS pipeline stage(s)" >&2
exec "${BUILD_DIR:-build}/bin/bitnet-serve" --model "$MODEL" --workers "$WORKERS" \
  --prompt "$PROMPT" --max_tokens 64 --seed 1 "$@"
