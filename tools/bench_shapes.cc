#include "tools/bench_shapes.h"

namespace bitnet::bench {

namespace {

struct ModelDims {
  const char* model;
  int64_t hidden, kv_dim, ffn, vocab;
};

// 2B-4T: 20 heads, 5 KV heads of 128. Llama-3-8B: 32 heads, 8 KV heads.
// 70B and 100B: 64 heads; 8 KV heads of 128 assumed (Llama-style GQA).
constexpr ModelDims kModels[] = {
    {"2b", 2560, 640, 6912, 128256},
    {"8b", 4096, 1024, 14336, 128256},
    {"70b", 8192, 1024, 24576, 128256},
    {"100b", 8192, 1024, 45568, 128256},
};

}  // namespace

std::vector<std::string> ReferenceModels() {
  std::vector<std::string> out;
  for (const ModelDims& m : kModels) out.push_back(m.model);
  return out;
}

std::vector<MatrixShape> ReferenceShapes(const std::vector<std::string>& models) {
  std::vector<MatrixShape> out;
  for (const std::string& want : models) {
    for (const ModelDims& m : kModels) {
      if (want != m.model) continue;
      out.push_back({m.model, "attn_q", m.hidden, m.hidden, 1});
      out.push_back({m.model, "attn_k/v", m.kv_dim, m.hidden, 2});
      out.push_back({m.model, "attn_output", m.hidden, m.hidden, 1});
      out.push_back({m.model, "ffn_gate/up", m.ffn, m.hidden, 2});
      out.push_back({m.model, "ffn_down", m.hidden, m.ffn, 1});
      out.push_back({m.model, "lm_head", m.vocab, m.hidden, 0});
    }
  }
  return out;
}

}  // namespace bitnet::bench
