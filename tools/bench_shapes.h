// The reference matrix shapes of DESIGN.md ("Performance: how we measure"):
// every distinct BitLinear of a layer, plus the 128256-row output head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet::bench {

struct MatrixShape {
  std::string model;  // 2b, 8b, 70b, 100b
  std::string name;   // e.g. attn_q, ffn_gate/up, lm_head
  int64_t rows = 0;   // output features
  int64_t cols = 0;   // input features
  int per_layer = 0;  // how many such matrices one layer has (0: once per model)
};

// All shapes of the named models ("2b", "8b", "70b", "100b").
std::vector<MatrixShape> ReferenceShapes(const std::vector<std::string>& models);
std::vector<std::string> ReferenceModels();

}  // namespace bitnet::bench
