#!/usr/bin/env bash
# Loads bitnet-synth models, and bitnet-convert's TQ2_0 / TQ1_0 output, in
# llama.cpp and compares its greedy tokens with bitnet-run's (with the
# activation quantization that reproduces llama.cpp: q8k for TQ1_0/TQ2_0,
# none for F32/F16). Needs node and npm (the npm
# package node-llama-cpp ships a prebuilt llama.cpp).
#   bash tools/llamacpp_check/run.sh [BIN_DIR]     (default: build/bin)
# Fails if llama.cpp cannot load a model or disagrees on the first token;
# later divergences are printed (random weights give near-ties, see
# shared/oracle/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../build/bin}"
[ -d "$here/node_modules/node-llama-cpp" ] || (cd "$here" && npm install --no-audit --no-fund)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prompt=288,84,259,110,278,121,32,110,101,116,119,266,107,115,267,116,111,263,32,101,118,259,121,268
n=24
status=0
# arch type seed [extra synth flags]; upstream llama.cpp knows bitnet and llama
# (bitnet-b1.58 is bitnet.cpp's fork) and ignores bitnet.hidden_activation.
# Type "convert-X" writes an I2_S model and repacks it to X with bitnet-convert
# (the converter's GGUF-to-GGUF path; its Hugging Face path is checked byte for
# byte against llama.cpp's own TQ files in tests/convert_test.cc).
while read -r arch type seed extra; do
  model="$work/$arch-$type.gguf"
  if [[ "$type" == convert-* ]]; then
    type=${type#convert-}
    "$bin/bitnet-synth" --out "$work/src-$seed.gguf" --arch "$arch" --type i2_s --seed "$seed" \
      --n-vocab 1000 --n-layer 3 -q $extra
    "$bin/bitnet-convert" -q -i "$work/src-$seed.gguf" -o "$model" --type "$type"
    arch="$arch (bitnet-convert)"
  else
    "$bin/bitnet-synth" --out "$model" --arch "$arch" --type "$type" --seed "$seed" \
      --n-vocab 1000 --n-layer 3 -q $extra
  fi
  aq=q8k
  case "$type" in f32|f16) aq=none ;; esac
  if ! theirs=$(node "$here/greedy.mjs" "$model" "$prompt" "$n" 2>"$work/err" | tail -1); then
    echo "FAIL $arch $type: llama.cpp could not load the model:"; cat "$work/err"; status=1; continue
  fi
  ours=$("$bin/bitnet-run" --model "$model" --prompt-ids "$prompt" -n "$n" --temp 0 \
    --act-quant "$aq" --threads 1 --json)
  verdict=$(/usr/bin/env python3 - "$theirs" "$ours" <<'PY'
import json, sys
a = json.loads(sys.argv[1])["ids"]; b = json.loads(sys.argv[2])["generated_ids"]
k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
print("same" if k is None else f"diverge@{k}")
PY
)
  echo "$arch $type ($aq): llama.cpp loads it; greedy ids: $verdict"
  [ "$verdict" = "diverge@0" ] && status=1
done <<'LIST'
bitnet tq2_0 1
bitnet tq1_0 2
bitnet f32 5
bitnet f16 6
llama tq2_0 3
llama tq1_0 4 --untied
bitnet convert-tq2_0 7
bitnet convert-tq1_0 8
LIST
exit $status
