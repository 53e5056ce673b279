#include "tools/synth_model.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/bpe_byte_map.h"
#include "model/spm_tokenizer.h"
#include "model/tokenizer_metadata.h"

namespace bitnet::synth {
namespace {

// ---------------------------------------------------------------------------
// Random streams. Only operations whose results the C++ standard and IEEE 754
// fix are used (mt19937_64's output, integer arithmetic, +, *), so a seed gives
// the same bytes on every platform.

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

class TensorRng {
 public:
  TensorRng(uint64_t seed, std::string_view tensor) : rng_(SplitMix64(seed ^ Fnv1a64(tensor))) {}

  // Uniform over {-1, 0, +1}: base-3 digits of a 64-bit fraction, 20 per
  // draw (they use ~32 of its bits, so the bias stays below 2^-32).
  int Trit() {
    if (trits_left_ == 0) {
      word_ = rng_();
      trits_left_ = 20;
    }
    const unsigned __int128 t = static_cast<unsigned __int128>(word_) * 3u;
    word_ = static_cast<uint64_t>(t);
    --trits_left_;
    return static_cast<int>(t >> 64) - 1;
  }

  // Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall),
  // centred and scaled to unit variance. Exact arithmetic, no libm.
  float Normal() {
    const uint64_t w = rng_();
    double s = 0;
    for (int i = 0; i < 4; ++i) s += (static_cast<double>((w >> (16 * i)) & 0xffff) + 0.5) / 65536.0;
    return static_cast<float>((s - 2.0) * 1.7320508075688772);
  }

 private:
  std::mt19937_64 rng_;
  uint64_t word_ = 0;
  int trits_left_ = 0;
};

// ---------------------------------------------------------------------------
// The tensor plan.

enum class Kind { kLinear, kEmbedding, kNorm };

struct TensorPlan {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] = row length
  ggml::Type type;
  Kind kind;
  float scale = 0;  // linear: the per-tensor scale (an fp16 value)
};

int64_t Rows(const TensorPlan& t) { return t.ne.size() > 1 ? t.ne[1] : 1; }

std::vector<TensorPlan> PlanTensors(const SynthSpec& s) {
  const int64_t d = s.n_embd, hd = s.head_dim_or_default(), q = s.n_head * hd,
                kv = s.n_head_kv * hd, ff = s.n_ff;
  const bool sub_norms = s.arch != "llama";
  auto lin = [&](std::string name, int64_t in, int64_t out, float scale) {
    return TensorPlan{std::move(name), {in, out}, s.ternary_type, Kind::kLinear,
                      ggml::RoundToHalf(scale)};
  };
  auto norm = [](std::string name, int64_t n) {
    return TensorPlan{std::move(name), {n}, ggml::Type::kF32, Kind::kNorm};
  };
  std::vector<TensorPlan> t;
  t.push_back({"token_embd.weight", {d, s.n_vocab}, s.embd_type, Kind::kEmbedding});
  t.push_back(norm("output_norm.weight", d));
  if (!s.tied) t.push_back({"output.weight", {d, s.n_vocab}, s.embd_type, Kind::kEmbedding});
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    // The oracle generator's scales (README "How the weights were made").
    t.push_back(norm(p + "attn_norm.weight", d));
    t.push_back(lin(p + "attn_q.weight", d, q, 0.02f + 0.001f * static_cast<float>(l)));
    t.push_back(lin(p + "attn_k.weight", d, kv, 0.02f));
    t.push_back(lin(p + "attn_v.weight", d, kv, 0.03f));
    t.push_back(lin(p + "attn_output.weight", q, d, 0.02f));
    if (sub_norms) t.push_back(norm(p + "attn_sub_norm.weight", q));
    t.push_back(norm(p + "ffn_norm.weight", d));
    t.push_back(lin(p + "ffn_gate.weight", d, ff, 0.02f));
    t.push_back(lin(p + "ffn_up.weight", d, ff, 0.02f));
    t.push_back(lin(p + "ffn_down.weight", ff, d, 0.01f));
    if (sub_norms) t.push_back(norm(p + "ffn_sub_norm.weight", ff));
  }
  return t;
}

// Values of rows [r0, r0 + n) of a tensor, continuing its random stream.
void FillValues(const TensorPlan& t, TensorRng& rng, int64_t n_rows, std::vector<float>& out) {
  out.resize(static_cast<size_t>(n_rows * t.ne[0]));
  switch (t.kind) {
    case Kind::kLinear:
      for (float& x : out) x = static_cast<float>(rng.Trit()) * t.scale;
      break;
    case Kind::kEmbedding:
      for (float& x : out) x = ggml::RoundToHalf(0.02f * rng.Normal());
      break;
    case Kind::kNorm:
      for (float& x : out) x = 1.f + 0.01f * rng.Normal();
      break;
  }
}

constexpr int64_t kChunkElems = int64_t{1} << 22;  // ~16 MiB of floats per slice
constexpr size_t kI2sTrailer = 32;                 // f32 scale + padding

// One slice of rows of a tensor, generated and encoded. Each slice has its
// own random stream (seed, tensor, slice index) and the slice size depends
// only on the shape, so the bytes do not depend on how many threads work.
struct Slice {
  std::vector<float> values;
  std::vector<uint8_t> bytes;  // encoded; for I2_S without the trailer
  std::array<uint8_t, kI2sTrailer> trailer{};
  float scale = -1.f;  // I2_S: the scale in this slice's trailer
  absl::Status status;
};

void MakeSlice(const TensorPlan& t, uint64_t seed, int64_t index, int64_t n_rows, Slice& out) {
  TensorRng rng(SplitMix64(seed) ^ static_cast<uint64_t>(index), t.name);
  FillValues(t, rng, n_rows, out.values);
  if (t.type == ggml::Type::kF32) {
    out.bytes.resize(out.values.size() * sizeof(float));
    std::memcpy(out.bytes.data(), out.values.data(), out.bytes.size());
    return;
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = ggml::Quantize(t.type, out.values);
  if (!bytes.ok()) {
    out.status = bytes.status();
    return;
  }
  out.bytes = *std::move(bytes);
  if (t.type == ggml::Type::kI2S) {
    const size_t len = out.bytes.size() - kI2sTrailer;
    std::memcpy(out.trailer.data(), out.bytes.data() + len, kI2sTrailer);
    std::memcpy(&out.scale, out.trailer.data(), sizeof out.scale);
    out.bytes.resize(len);
  }
}

// Streams one tensor: slices of rows are generated and encoded (`threads` at
// a time) and handed to the sink in order. Ternary and K-quant blocks run
// along rows, so encoding slice by slice gives the bytes of encoding the
// whole tensor, except for I2_S, whose one per-tensor scale trails the codes:
// its codes are written per slice and the trailer (the scale, the same in
// every slice that has a non-zero) at the end.
absl::Status StreamTensor(const TensorPlan& t, uint64_t seed, int threads,
                          const gguf::Writer::ChunkSink& sink,
                          const std::function<void(uint64_t)>& advanced) {
  const int64_t cols = t.ne[0], rows = Rows(t);
  const int64_t rows_per_slice = std::max<int64_t>(1, kChunkElems / cols);
  const int64_t n_slices = (rows + rows_per_slice - 1) / rows_per_slice;
  const int64_t wave = std::max<int64_t>(1, std::min<int64_t>(threads, n_slices));
  std::vector<Slice> slices(static_cast<size_t>(wave));
  Slice best;  // I2_S: the trailer with the largest scale
  for (int64_t first = 0; first < n_slices; first += wave) {
    const int64_t count = std::min(wave, n_slices - first);
    auto make = [&](int64_t j) {
      const int64_t r0 = (first + j) * rows_per_slice;
      MakeSlice(t, seed, first + j, std::min(rows_per_slice, rows - r0), slices[static_cast<size_t>(j)]);
    };
    std::vector<std::thread> pool;
    for (int64_t j = 1; j < count; ++j) pool.emplace_back(make, j);
    make(0);
    for (std::thread& th : pool) th.join();
    for (int64_t j = 0; j < count; ++j) {
      Slice& sl = slices[static_cast<size_t>(j)];
      if (!sl.status.ok()) return sl.status;
      if (absl::Status s = sink(sl.bytes.data(), sl.bytes.size()); !s.ok()) return s;
      advanced(sl.bytes.size());
      if (sl.scale > best.scale) {
        best.scale = sl.scale;
        best.trailer = sl.trailer;
      }
    }
  }
  if (t.type == ggml::Type::kI2S) {
    if (absl::Status s = sink(best.trailer.data(), best.trailer.size()); !s.ok()) return s;
    advanced(best.trailer.size());
  }
  return absl::OkStatus();
}

// general.file_type (llama_ftype) for the linear weights' type; I2_S is
// bitnet.cpp's 40, which is also how readers recognise its type id 36.
uint32_t FileType(ggml::Type t) {
  switch (t) {
    case ggml::Type::kF32: return 0;
    case ggml::Type::kF16: return 1;
    case ggml::Type::kTQ1_0: return 36;
    case ggml::Type::kTQ2_0: return 37;
    case ggml::Type::kI2S: return 40;
    default: return 0;
  }
}

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// absl here has its own string_view type; StrCat needs it.
absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

// ---------------------------------------------------------------------------

std::vector<std::string> PresetNames() { return {"tiny", "2b4t", "8b", "70b", "100b"}; }

absl::StatusOr<SynthSpec> Preset(std::string_view name) {
  SynthSpec s;  // the defaults are the tiny shape
  const std::string n = absl::AsciiStrToLower(AV(name));
  s.name = "synthetic-" + n;
  if (n == "tiny") return s;
  s.n_vocab = 128256;
  s.rope_base = 500000.f;
  if (n == "2b4t") {
    s.arch = "bitnet-b1.58";
    s.n_embd = 2560, s.n_layer = 30, s.n_head = 20, s.n_head_kv = 5, s.n_ff = 6912;
    s.n_ctx = 4096;
    return s;
  }
  if (n == "8b") {
    s.arch = "llama";
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 14336;
    s.n_ctx = 8192;
    s.tied = false;
    return s;
  }
  if (n == "70b" || n == "100b") {
    s.arch = "bitnet";
    s.n_embd = 8192, s.n_head = 64, s.n_head_kv = 8;
    s.n_layer = n == "70b" ? 80 : 72;
    s.n_ff = n == "70b" ? 24576 : 45568;
    s.n_ctx = 4096;
    return s;
  }
  return Invalid(absl::StrCat("unknown preset '", AV(name), "'; choose one of ",
                              absl::StrJoin(PresetNames(), ", ")));
}

absl::StatusOr<ggml::Type> TernaryTypeFromName(std::string_view name) {
  absl::StatusOr<ggml::Type> t = ggml::TypeFromName(name);
  if (t.ok() && (*t == ggml::Type::kTQ1_0 || *t == ggml::Type::kTQ2_0 || *t == ggml::Type::kI2S ||
                 *t == ggml::Type::kF32 || *t == ggml::Type::kF16)) {
    return t;
  }
  return Invalid(absl::StrCat("unsupported weight type '", AV(name),
                              "'; choose one of tq1_0, tq2_0, i2_s, f32, f16"));
}

absl::StatusOr<ggml::Type> EmbdTypeFromName(std::string_view name) {
  absl::StatusOr<ggml::Type> t = ggml::TypeFromName(name);
  if (t.ok() && (*t == ggml::Type::kF32 || *t == ggml::Type::kF16 || *t == ggml::Type::kQ8_0 ||
                 *t == ggml::Type::kQ6K)) {
    return t;
  }
  return Invalid(
      absl::StrCat("unsupported embedding type '", AV(name), "'; choose one of f32, f16, q8_0, q6_k"));
}

absl::Status ValidateSpec(const SynthSpec& s) {
  if (s.arch != "bitnet" && s.arch != "bitnet-b1.58" && s.arch != "bitnet-25" && s.arch != "llama") {
    return Invalid(absl::StrCat("unsupported arch '", s.arch,
                                "'; choose one of bitnet, bitnet-b1.58, bitnet-25, llama"));
  }
  if (!s.activation.empty() && s.activation != "silu" && s.activation != "relu2") {
    return Invalid(absl::StrCat("unsupported activation '", s.activation, "'; choose silu or relu2"));
  }
  const std::pair<const char*, int64_t> positive[] = {
      {"n_vocab", s.n_vocab}, {"n_embd", s.n_embd}, {"n_layer", s.n_layer}, {"n_head", s.n_head},
      {"n_head_kv", s.n_head_kv}, {"n_ff", s.n_ff}, {"n_ctx", s.n_ctx}};
  for (const auto& [name, v] : positive) {
    // Metadata stores these as uint32.
    if (v <= 0 || v > 0xffffffffll) {
      return Invalid(absl::StrCat(name, " must be in [1, 2^32), got ", v));
    }
  }
  if (s.vocab) {
    if (static_cast<int64_t>(s.vocab->tokens.size()) != s.n_vocab) {
      return Invalid(absl::StrCat("n_vocab (", s.n_vocab, ") must equal the embedded vocabulary's ",
                                  s.vocab->tokens.size(), " tokens"));
    }
  } else if (s.tokenizer != "gpt2" && s.tokenizer != "spm") {
    return Invalid(absl::StrCat("unsupported synthetic tokenizer '", s.tokenizer,
                                "'; choose gpt2 or spm"));
  } else if (const int64_t min_vocab = s.tokenizer == "spm" ? 259 : 258; s.n_vocab < min_vocab) {
    return Invalid(absl::StrCat("n_vocab must be at least ", min_vocab,
                                " (256 byte tokens and the special tokens), got ", s.n_vocab));
  }
  if (s.n_head % s.n_head_kv != 0) {
    return Invalid(absl::StrCat("n_head (", s.n_head, ") must be a multiple of n_head_kv (",
                                s.n_head_kv, ")"));
  }
  if (s.head_dim < 0) return Invalid(absl::StrCat("head_dim must be >= 0, got ", s.head_dim));
  if (s.head_dim == 0 && s.n_embd % s.n_head != 0) {
    return Invalid(absl::StrCat("n_embd (", s.n_embd, ") must be a multiple of n_head (", s.n_head,
                                "), or give head_dim"));
  }
  const int64_t hd = s.head_dim_or_default();
  if (hd % 2 != 0) return Invalid(absl::StrCat("head_dim must be even for RoPE, got ", hd));
  if (!(s.rope_base > 0.f)) return Invalid(absl::StrCat("rope_base must be positive, got ", s.rope_base));
  if (!(s.rms_eps > 0.f)) return Invalid(absl::StrCat("rms_eps must be positive, got ", s.rms_eps));
  if (!TernaryTypeFromName(ggml::Traits(s.ternary_type).name).ok()) {
    return Invalid(absl::StrCat("weight type ", AV(ggml::Traits(s.ternary_type).name),
                                " is not a synthetic weight type"));
  }
  if (!EmbdTypeFromName(ggml::Traits(s.embd_type).name).ok()) {
    return Invalid(absl::StrCat("embedding type ", AV(ggml::Traits(s.embd_type).name),
                                " is not a synthetic embedding type"));
  }
  // Every row (ne[0]) must hold whole blocks of its type.
  const int64_t wb = ggml::Traits(s.ternary_type).block_elems;
  const std::pair<const char*, int64_t> rows[] = {
      {"n_embd", s.n_embd}, {"n_head * head_dim", s.n_head * hd}, {"n_ff", s.n_ff}};
  for (const auto& [name, len] : rows) {
    if (len % wb != 0) {
      return Invalid(absl::StrCat(name, " (", len, ") must be a multiple of ", wb, " for weight type ",
                                  AV(ggml::Traits(s.ternary_type).name)));
    }
  }
  const int64_t eb = ggml::Traits(s.embd_type).block_elems;
  if (s.n_embd % eb != 0) {
    return Invalid(absl::StrCat("n_embd (", s.n_embd, ") must be a multiple of ", eb,
                                " for embedding type ", AV(ggml::Traits(s.embd_type).name)));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TensorDataBytes(const SynthSpec& spec) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  uint64_t total = 0;
  for (const TensorPlan& t : PlanTensors(spec)) {
    absl::StatusOr<uint64_t> b = ggml::TensorBytes(t.type, t.ne[0] * Rows(t));
    if (!b.ok()) return b.status();
    total += *b;
  }
  return total;
}

// ---------------------------------------------------------------------------
// Tokenizer.

absl::Status AddSyntheticTokenizer(gguf::Writer& w, int64_t n_vocab) {
  if (n_vocab < 258) {
    return Invalid(absl::StrCat("the synthetic tokenizer needs n_vocab >= 258, got ", n_vocab));
  }
  // Common English merges, in rank order, each using only earlier results.
  static constexpr std::array<std::pair<const char*, const char*>, 32> kMerges = {{
      {"Ġ", "t"}, {"h", "e"}, {"i", "n"}, {"e", "r"}, {"a", "n"}, {"Ġ", "a"}, {"o", "n"},
      {"r", "e"}, {"Ġt", "he"}, {"e", "n"}, {"o", "r"}, {"Ġ", "s"}, {"Ġ", "w"}, {"i", "s"},
      {"a", "t"}, {"o", "u"}, {"e", "d"}, {"Ġ", "o"}, {"i", "t"}, {"Ġ", "b"}, {"in", "g"},
      {"Ġ", "c"}, {"a", "r"}, {"l", "l"}, {"Ġ", "f"}, {"Ġ", "m"}, {"Ġ", "p"}, {"e", "s"},
      {"Ġ", "in"}, {"a", "l"}, {"Ġ", "h"}, {"Ġ", "d"},
  }};
  constexpr int32_t kNormal = 1, kControl = 3, kUnused = 5;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(n_vocab));
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(bpe::ByteToText(static_cast<uint8_t>(b)));
    types.push_back(kNormal);
  }
  const size_t n_merges = std::min<size_t>(kMerges.size(), static_cast<size_t>(n_vocab - 258));
  std::vector<std::string> merges;
  for (size_t i = 0; i < n_merges; ++i) {
    merges.push_back(absl::StrCat(kMerges[i].first, " ", kMerges[i].second));
    tokens.push_back(absl::StrCat(kMerges[i].first, kMerges[i].second));
    types.push_back(kNormal);
  }
  const int32_t bos = static_cast<int32_t>(tokens.size());
  tokens.push_back("<s>");
  tokens.push_back("</s>");
  types.push_back(kControl);
  types.push_back(kControl);
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < n_vocab; ++i) {
    tokens.push_back(absl::StrCat("[PAD", i, "]"));
    types.push_back(kUnused);
  }
  w.SetValue("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
  w.SetValue("tokenizer.ggml.pre", gguf::Value::Str("gpt-2"));
  w.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr(tokens));
  w.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr(types));
  w.SetValue("tokenizer.ggml.merges", gguf::Value::StrArr(merges));
  w.SetValue("tokenizer.ggml.bos_token_id", gguf::Value::U32(static_cast<uint32_t>(bos)));
  w.SetValue("tokenizer.ggml.eos_token_id", gguf::Value::U32(static_cast<uint32_t>(bos + 1)));
  w.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Bool(true));
  w.SetValue("tokenizer.ggml.add_eos_token", gguf::Value::Bool(false));
  return absl::OkStatus();
}

absl::StatusOr<TokenizerData> SyntheticSpmTokenizer(int64_t n_vocab) {
  if (n_vocab < 259) {
    return Invalid(absl::StrCat("the synthetic SentencePiece tokenizer needs n_vocab >= 259, got ",
                                n_vocab));
  }
  const std::string space(spm::kSpace);
  TokenizerData d;
  d.model = "llama";
  d.pre = "default";
  auto add = [&](std::string text, TokenType type, float score) {
    if (static_cast<int64_t>(d.tokens.size()) >= n_vocab) return;
    d.tokens.push_back(std::move(text));
    d.types.push_back(type);
    d.scores.push_back(score);
  };
  add("<unk>", TokenType::kUnknown, 0);
  add("<s>", TokenType::kControl, 0);
  add("</s>", TokenType::kControl, 0);
  for (int b = 0; b < 256; ++b) add(spm::ByteTokenText(static_cast<uint8_t>(b)), TokenType::kByte, 0);
  // Normal pieces, best first (llama.cpp merges the highest score first).
  std::vector<std::string> pieces = {space};
  for (char c = 33; c < 127; ++c) pieces.push_back(std::string(1, c));
  static constexpr const char* kPieces[] = {
      "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te",
      "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io",
      "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "the", "ing",
      "and", "ion", "ent", "tion", "ation", "ll", "ss"};
  static constexpr const char* kWords[] = {
      "t", "a", "s", "w", "c", "b", "o", "m", "f", "p", "h", "d", "i", "th", "the", "of",
      "and", "to", "in", "is", "that", "it", "for", "was", "on", "he", "with", "as", "be", "at",
      "The", "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they",
      "which", "one", "you", "were", "her", "all", "she", "there", "would", "their", "we",
      "him", "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said",
      "what", "up", "its", "about", "into", "than", "them", "can", "only", "other", "new",
      "some", "could", "time", "these", "two", "may", "then", "do", "first", "any", "my",
      "now", "such", "like", "our", "over", "man", "me", "even", "most", "made", "after",
      "also", "did", "many", "before", "must", "through", "back", "years", "where", "much",
      "your", "way", "well", "down", "should", "because", "each", "just", "those", "people"};
  for (const char* p : kPieces) pieces.push_back(p);
  for (const char* w : kWords) pieces.push_back(space + w);
  for (char a = 'a'; a <= 'z'; ++a) {
    for (char b = 'a'; b <= 'z'; ++b) pieces.push_back(std::string{a, b});
  }
  absl::flat_hash_set<std::string> seen;
  float score = -1;
  for (std::string& p : pieces) {
    if (seen.insert(p).second) add(std::move(p), TokenType::kNormal, score--);
  }
  while (static_cast<int64_t>(d.tokens.size()) < n_vocab) {
    add(absl::StrCat("[PAD", d.tokens.size(), "]"), TokenType::kUnused, 0);
  }
  d.unk = 0;
  d.bos = 1;
  d.eos = 2;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

// ---------------------------------------------------------------------------
// The file.

absl::Status WriteSynthModel(const SynthSpec& spec, const std::string& path,
                             const ProgressFn& progress, int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  absl::StatusOr<uint64_t> total = TensorDataBytes(spec);
  if (!total.ok()) return total.status();

  gguf::Writer w;
  auto u32 = [](int64_t v) { return gguf::Value::U32(static_cast<uint32_t>(v)); };
  const std::string a = spec.arch + ".";
  const int64_t hd = spec.head_dim_or_default();
  w.SetValue("general.architecture", gguf::Value::Str(spec.arch));
  w.SetValue("general.name", gguf::Value::Str(spec.name));
  w.SetValue("general.alignment", u32(32));
  w.SetValue(a + "context_length", u32(spec.n_ctx));
  w.SetValue(a + "embedding_length", u32(spec.n_embd));
  w.SetValue(a + "block_count", u32(spec.n_layer));
  w.SetValue(a + "feed_forward_length", u32(spec.n_ff));
  w.SetValue(a + "attention.head_count", u32(spec.n_head));
  w.SetValue(a + "attention.head_count_kv", u32(spec.n_head_kv));
  if (spec.head_dim > 0) {
    w.SetValue(a + "attention.key_length", u32(hd));
    w.SetValue(a + "attention.value_length", u32(hd));
  }
  w.SetValue(a + "rope.dimension_count", u32(hd));
  w.SetValue(a + "rope.freq_base", gguf::Value::F32(spec.rope_base));
  w.SetValue(a + "attention.layer_norm_rms_epsilon", gguf::Value::F32(spec.rms_eps));
  w.SetValue(a + "vocab_size", u32(spec.n_vocab));
  if (!spec.activation.empty()) w.SetValue(a + "hidden_activation", gguf::Value::Str(spec.activation));
  w.SetValue("general.file_type", u32(FileType(spec.ternary_type)));
  w.SetValue("general.quantization_version", u32(2));
  if (spec.vocab) {
    SetTokenizerMetadata(*spec.vocab, w);
  } else if (spec.tokenizer == "spm") {
    absl::StatusOr<TokenizerData> spm = SyntheticSpmTokenizer(spec.n_vocab);
    if (!spm.ok()) return spm.status();
    SetTokenizerMetadata(*spm, w);
  } else if (absl::Status s = AddSyntheticTokenizer(w, spec.n_vocab); !s.ok()) {
    return s;
  }

  const std::vector<TensorPlan> plan = PlanTensors(spec);
  Progress state{0, *total, 0, plan.size(), {}};
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorPlan& t = plan[i];
    auto fill = [&, i](const gguf::Writer::ChunkSink& sink) {
      state.tensors_done = i;
      state.tensor = t.name;
      if (progress) progress(state);
      absl::Status s = StreamTensor(t, spec.seed, threads, sink, [&](uint64_t n) {
        state.bytes_done += n;
        if (progress) progress(state);
      });
      state.tensors_done = i + 1;
      if (s.ok() && progress && i + 1 == plan.size()) progress(state);
      return s;
    };
    if (absl::Status s = w.AddStreamedTensor(t.name, t.ne, t.type, fill); !s.ok()) return s;
  }
  return w.WriteFile(path);
}

}  // namespace bitnet::synth
