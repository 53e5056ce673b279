#include "tools/model_session.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/model_file.h"

namespace bitnet::cli {

void AddModelFlag(ArgParser& args, std::string* model) {
  args.String("-m,--model", model,
              "GGUF model file or Hugging Face checkpoint directory (required)", "PATH");
}

absl::Status RequireModel(const std::string& model) {
  if (!model.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "--model: required (a GGUF file or a Hugging Face directory)");
}

void AddEngineFlags(ArgParser& args, EngineFlags* f, std::string ctx_help) {
  args.Choice("--act-quant", &f->act_quant, {"per-token", "q8k", "none"},
              "activation quantization: per-token (BitNet, bitnet.cpp I2_S), q8k (llama.cpp "
              "TQ1_0/TQ2_0) or none (float, llama.cpp F32)");
  args.Choice("--kv-type", &f->kv_type, {"f16", "f32"}, "KV cache element type");
  args.Int32("-t,--threads", &f->threads, "CPU threads (0: all hardware threads)", 0, 1024);
  args.Int("-c,--ctx-size", &f->ctx_size, std::move(ctx_help), 0, int64_t{1} << 31);
}

absl::StatusOr<EngineOptions> ToEngineOptions(const EngineFlags& f) {
  EngineOptions o;
  absl::StatusOr<kernels::ActQuant> aq = kernels::ActQuantFromName(f.act_quant);
  if (!aq.ok()) return absl::InvalidArgumentError(absl::StrCat("--act-quant: ", aq.status().message()));
  o.act_quant = *aq;
  absl::StatusOr<KvType> kv = KvTypeFromName(f.kv_type);
  if (!kv.ok()) return absl::InvalidArgumentError(absl::StrCat("--kv-type: ", kv.status().message()));
  o.kv_type = *kv;
  o.n_threads = f.threads > 0 ? f.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.n_ctx = f.ctx_size;
  return o;
}

absl::StatusOr<ModelSession> LoadModelSession(const std::string& path,
                                              const EngineOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto annotate = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("model '", path, "': ", s.message()));
  };
  ModelSession m;
  absl::StatusOr<std::unique_ptr<gguf::File>> file = OpenModelFile(path);
  if (!file.ok()) return annotate(file.status());
  m.file = *std::move(file);
  absl::StatusOr<std::shared_ptr<const ModelWeights>> weights = ModelWeights::Load(*m.file);
  if (!weights.ok()) return annotate(weights.status());
  m.weights = *std::move(weights);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(*m.file);
  if (!tok.ok()) return annotate(tok.status());
  m.tokenizer = *std::move(tok);
  absl::StatusOr<std::unique_ptr<StageEngine>> engine = StageEngine::Create(m.weights, options);
  if (!engine.ok()) return engine.status();
  m.engine = *std::move(engine);
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace bitnet::cli
