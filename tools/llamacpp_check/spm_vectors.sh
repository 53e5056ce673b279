#!/usr/bin/env bash
# Writes tests/data/spm_vectors.jsonl: llama.cpp's encodings of many strings
# with bitnet-synth's synthetic SentencePiece vocabulary (--tokenizer spm,
# 1000 tokens). Needs node and npm; CI reads the committed file.
#   bash tools/llamacpp_check/spm_vectors.sh [BIN_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../build/bin}"
[ -d "$here/node_modules/node-llama-cpp" ] || (cd "$here" && npm install --no-audit --no-fund)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin/bitnet-synth" --out "$work/spm.gguf" --arch llama --tokenizer spm --n-vocab 1000 --n-layer 1 -q
node "$here/spm_vectors.mjs" "$work/spm.gguf" "$here/../../tests/data/llama3_vectors.jsonl" \
  "$here/../../tests/data/spm_vectors.jsonl"
