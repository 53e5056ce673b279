// What bitnet-run and bitnet-perplexity share: the engine flags
// (--act-quant, --kv-type, --threads, --ctx-size) and loading a GGUF model
// into a whole-model StageEngine with its tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/stage_engine.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "tools/cli_args.h"

namespace bitnet::cli {

struct EngineFlags {
  std::string act_quant = "per-token";
  std::string kv_type = "f16";
  int32_t threads = 0;  // 0: all hardware threads
  int64_t ctx_size = 0;  // 0: the model's context length
};
// Registers -m/--model: a GGUF file or a Hugging Face checkpoint directory.
void AddModelFlag(ArgParser& args, std::string* model);
// INVALID_ARGUMENT naming --model when it was not given.
absl::Status RequireModel(const std::string& model);

// Registers --act-quant, --kv-type, --threads/-t, --ctx-size/-c on `args`.
void AddEngineFlags(ArgParser& args, EngineFlags* flags, std::string ctx_help);
absl::StatusOr<EngineOptions> ToEngineOptions(const EngineFlags& flags);

struct ModelSession {
  std::unique_ptr<gguf::File> file;
  std::shared_ptr<const ModelWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<StageEngine> engine;
  double load_seconds = 0;
};
// Opens, validates and loads the whole model. Errors name the file.
absl::StatusOr<ModelSession> LoadModelSession(const std::string& path,
                                              const EngineOptions& options);

}  // namespace bitnet::cli
