#!/bin/sh
# Rebuilds the bundled model from scratch: data, tokenizer, training, export,
# GGUF, and the PyTorch reference data of tests/trained_model_test.cc.
#
#   tools/train/make_default_model.sh [WORK_DIR]
#
# Needs (Debian 12): python3-torch, python3-numpy, libopenblas0-pthread
# (without it Debian's torch multiplies matrices with the reference BLAS,
# several times slower), and bitnet-import-trained built in build/bin
# (or $BIN_DIR). About an hour on 2 free cores; the training step resumes
# from WORK_DIR/run/checkpoint.pt if interrupted. Run it under `nice` on a
# shared machine.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-/tmp/austen-train}
BIN_DIR=${BIN_DIR:-$ROOT/build/bin}
PY=/usr/bin/python3
NAME=austen-4m
mkdir -p "$WORK"

# 1. The text: Jane Austen's novels as Debian ships them (MIT package,
#    public-domain texts). Downloaded, not installed (no R needed).
DEB=$(ls "$WORK"/r-cran-janeaustenr_*_all.deb 2>/dev/null | head -n 1 || true)
if [ -z "$DEB" ]; then
  (cd "$WORK" && apt-get download r-cran-janeaustenr)
  DEB=$(ls "$WORK"/r-cran-janeaustenr_*_all.deb | head -n 1)
fi

# 2. Tokenizer + QAT training (hyperparameters are train.py's defaults).
"$PY" "$ROOT/tools/train/train.py" --deb "$DEB" --work "$WORK/run" --seed 1234

# 3. Export, GGUF with the project's writer, reference data.
"$PY" "$ROOT/tools/train/export.py" --checkpoint "$WORK/run/checkpoint.pt" \
  --out "$WORK/export" --name "$NAME"
"$BIN_DIR/bitnet-import-trained" --in "$WORK/export" --out "$ROOT/models/$NAME.gguf"
cp "$WORK/run/heldout.txt" "$ROOT/models/austen-heldout.txt"
"$PY" "$ROOT/tools/train/evaluate.py" --export "$WORK/export" \
  --text "$ROOT/models/austen-heldout.txt" \
  --out "$ROOT/tests/data/trained_model_reference.json"
