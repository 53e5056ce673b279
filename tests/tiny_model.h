// Builds small random models in GGUF form for engine and loader tests, so
// they run without the oracle data. Header-only: included by the tests that
// need it.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/float16.h"
#include "model/gguf.h"
#include "model/ggml_types.h"

namespace bitnet::testing {

struct TinyModelSpec {
  std::string arch = "bitnet";  // bitnet | bitnet-b1.58 | bitnet-25 | llama | ...
  int64_t n_vocab = 48;
  int64_t n_embd = 64;
  int64_t n_layer = 3;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ff = 96;
  int64_t n_ctx = 64;
  float rope_base = 10000.f;
  bool tied = true;               // no output.weight
  bool sub_norms = true;          // write attn_sub_norm / ffn_sub_norm
  std::string activation;         // {arch}.hidden_activation when non-empty
  ggml::Type linear_type = ggml::Type::kF32;  // F32 or F16 (ternary-valued)
  bool dense_linear = false;      // linear weights not ternary-valued
  uint64_t seed = 7;
  // Metadata / tensors to drop, add or override, for error tests.
  std::vector<std::string> drop_keys;
  std::vector<std::string> drop_tensors;
  std::map<std::string, gguf::Value> extra_keys;
  std::map<std::string, std::vector<int64_t>> reshape;  // tensor -> ne to write instead
  std::map<std::string, std::vector<float>> extra_tensors;  // 1-d F32 tensors to add
};

namespace tiny_model_internal {

inline std::vector<uint8_t> Bytes(const std::vector<float>& v, ggml::Type t) {
  std::vector<uint8_t> out;
  if (t == ggml::Type::kF16) {
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = kernels::FloatToHalfBits(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
  }
  return out;
}

}  // namespace tiny_model_internal

// Serialized GGUF bytes of a random model. Ternary-valued linear weights use
// one scale per tensor (an fp16 value, so F16 files hold them exactly).
inline std::vector<uint8_t> TinyModelBytes(const TinyModelSpec& s) {
  using tiny_model_internal::Bytes;
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> tern(-1, 1);
  gguf::Writer w;
  std::map<std::string, bool> written;
  auto set = [&](const std::string& key, gguf::Value v) {
    for (const std::string& d : s.drop_keys) {
      if (d == key) return;
    }
    if (auto it = s.extra_keys.find(key); it != s.extra_keys.end()) v = it->second;
    w.SetValue(key, std::move(v));
    written[key] = true;
  };
  const std::string a = s.arch + ".";
  set("general.architecture", gguf::Value::Str(s.arch));
  set("general.name", gguf::Value::Str("tiny-test"));
  set(a + "context_length", gguf::Value::U32(static_cast<uint32_t>(s.n_ctx)));
  set(a + "embedding_length", gguf::Value::U32(static_cast<uint32_t>(s.n_embd)));
  set(a + "block_count", gguf::Value::U32(static_cast<uint32_t>(s.n_layer)));
  set(a + "feed_forward_length", gguf::Value::U32(static_cast<uint32_t>(s.n_ff)));
  set(a + "attention.head_count", gguf::Value::U32(static_cast<uint32_t>(s.n_head)));
  set(a + "attention.head_count_kv", gguf::Value::U32(static_cast<uint32_t>(s.n_head_kv)));
  set(a + "attention.layer_norm_rms_epsilon", gguf::Value::F32(1e-5f));
  set(a + "rope.freq_base", gguf::Value::F32(s.rope_base));
  set(a + "vocab_size", gguf::Value::U32(static_cast<uint32_t>(s.n_vocab)));
  if (!s.activation.empty()) set(a + "hidden_activation", gguf::Value::Str(s.activation));
  for (const auto& [k, v] : s.extra_keys) {
    if (!written.count(k)) set(k, v);
  }

  auto add = [&](const std::string& name, std::vector<int64_t> ne, const std::vector<float>& v,
                 ggml::Type t) {
    for (const std::string& d : s.drop_tensors) {
      if (d == name) return;
    }
    std::vector<float> data = v;
    if (auto it = s.reshape.find(name); it != s.reshape.end()) {
      ne = it->second;
      int64_t n = 1;
      for (int64_t e : ne) n *= e;
      data.resize(static_cast<size_t>(n), 0.01f);
    }
    absl::Status st = w.AddTensor(name, ne, t, Bytes(data, t));
    EXPECT_TRUE(st.ok()) << name << ": " << st;
  };
  auto gaussian = [&](int64_t n, float mean, float sd) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = kernels::RoundToHalf(mean + sd * normal(rng));
    return v;
  };
  auto linear = [&](int64_t rows, int64_t cols, float scale) {
    if (s.dense_linear) return gaussian(rows * cols, 0.f, scale);
    const float sc = kernels::RoundToHalf(scale);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = static_cast<float>(tern(rng)) * sc;
    return v;
  };
  const int64_t d = s.n_embd, hd = s.n_embd / s.n_head, q = s.n_head * hd,
                kv = s.n_head_kv * hd, ff = s.n_ff;
  add("token_embd.weight", {d, s.n_vocab}, gaussian(d * s.n_vocab, 0.f, 0.5f), ggml::Type::kF32);
  add("output_norm.weight", {d}, gaussian(d, 1.f, 0.05f), ggml::Type::kF32);
  if (!s.tied) {
    add("output.weight", {d, s.n_vocab}, gaussian(d * s.n_vocab, 0.f, 0.5f), ggml::Type::kF32);
  }
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d}, gaussian(d, 1.f, 0.05f), ggml::Type::kF32);
    add(p + "attn_q.weight", {d, q}, linear(q, d, 0.08f), s.linear_type);
    add(p + "attn_k.weight", {d, kv}, linear(kv, d, 0.08f), s.linear_type);
    add(p + "attn_v.weight", {d, kv}, linear(kv, d, 0.1f), s.linear_type);
    add(p + "attn_output.weight", {q, d}, linear(d, q, 0.05f), s.linear_type);
    add(p + "ffn_norm.weight", {d}, gaussian(d, 1.f, 0.05f), ggml::Type::kF32);
    add(p + "ffn_gate.weight", {d, ff}, linear(ff, d, 0.08f), s.linear_type);
    add(p + "ffn_up.weight", {d, ff}, linear(ff, d, 0.08f), s.linear_type);
    add(p + "ffn_down.weight", {ff, d}, linear(d, ff, 0.05f), s.linear_type);
    if (s.sub_norms) {
      add(p + "attn_sub_norm.weight", {q}, gaussian(q, 1.f, 0.05f), ggml::Type::kF32);
      add(p + "ffn_sub_norm.weight", {ff}, gaussian(ff, 1.f, 0.05f), ggml::Type::kF32);
    }
  }
  for (const auto& [name, v] : s.extra_tensors) {
    add(name, {static_cast<int64_t>(v.size())}, v, ggml::Type::kF32);
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

// A parsed tiny model that owns its bytes.
struct TinyModel {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::File> file;
};

inline TinyModel MakeTinyModel(const TinyModelSpec& s) {
  TinyModel m;
  m.bytes = TinyModelBytes(s);
  absl::StatusOr<std::unique_ptr<gguf::File>> f =
      gguf::File::FromBuffer(m.bytes.data(), m.bytes.size(), "tiny-" + s.arch + ".gguf");
  EXPECT_TRUE(f.ok()) << f.status();
  if (f.ok()) m.file = std::move(*f);
  return m;
}

}  // namespace bitnet::testing
