// Turns a model trained by tools/train/ (the `bitnet-trained` interchange
// files: PREFIX.json with hyperparameters, tokenizer and a tensor table, and
// PREFIX.bin with the raw tensors) into a GGUF file written with the
// project's own gguf::Writer and ggml::Quantize. The format is described in
// tools/train/export.py and docs/TRAINING.md.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/ggml_types.h"
#include "model/gguf.h"

namespace bitnet::trained {

struct ImportOptions {
  // Linear weights: tq2_0 (default), tq1_0 or i2_s; each stores the trained
  // ternary codes and per-tensor scale exactly (checked after encoding).
  ggml::Type ternary_type = ggml::Type::kTQ2_0;
  // token_embd (also the tied lm_head): f16 (default, what the trainer's
  // exact evaluation assumes), f32, q8_0 or q6_K.
  ggml::Type embd_type = ggml::Type::kF16;
  std::string name;  // general.name; empty: the export's name
};

// Builds the GGUF in memory from the export files. INVALID_ARGUMENT naming
// the field or tensor for anything malformed (wrong format/version, missing
// keys, shapes that disagree with the hyperparameters, codes outside
// {-1, 0, 1}, a tensor outside the .bin, ...); NOT_FOUND for a missing file.
absl::StatusOr<gguf::Writer> BuildGguf(const std::string& json_path, const std::string& bin_path,
                                       const ImportOptions& options);

// BuildGguf, then writes `out_path` and checks that the file loads as a
// model (config, weights, tokenizer); the file is removed if anything fails.
absl::Status ImportTrained(const std::string& json_path, const std::string& bin_path,
                           const std::string& out_path, const ImportOptions& options);

}  // namespace bitnet::trained
