#include "model/bpe_pretokenizer.h"

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/unicode_text.h"

namespace bitnet::bpe {
namespace {

// The classes every expression is built from. kEnd stands for "past the end
// of the piece being split": the expressions never look across pieces.
enum class Cls { kLetter, kNumber, kSpace, kOther, kEnd };

Cls Classify(uint32_t cp) {
  if (unicode::IsLetter(cp)) return Cls::kLetter;
  if (unicode::IsNumber(cp)) return Cls::kNumber;
  if (unicode::IsWhitespace(cp)) return Cls::kSpace;
  return Cls::kOther;
}

bool IsNewline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

uint32_t AsciiLower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

// One piece [begin, end) of the text, with the helpers the splitters share.
class Piece {
 public:
  Piece(std::span<const uint32_t> cps, size_t begin, size_t end)
      : cps_(cps), begin_(begin), end_(end) {}

  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  uint32_t At(size_t p) const { return cps_[p]; }
  Cls ClassAt(size_t p) const { return p < end_ ? Classify(cps_[p]) : Cls::kEnd; }

  // Length of 's 't 're 've 'm 'll 'd at p (0 if none); `fold` makes it
  // case-insensitive (only ASCII letters lower-case to these).
  size_t Contraction(size_t p, bool fold) const {
    if (cps_[p] != '\'' || p + 1 >= end_) return 0;
    auto low = [&](size_t q) { return fold ? AsciiLower(cps_[q]) : cps_[q]; };
    const uint32_t a = low(p + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (p + 2 >= end_) return 0;
    const uint32_t b = low(p + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // End of the run of class `c` starting at p.
  size_t RunEnd(size_t p, Cls c) const {
    while (ClassAt(p) == c) ++p;
    return p;
  }

  // \s+(?!\S)|\s+ at p (a whitespace character): a run of several spaces
  // followed by more text leaves its last space to the next word.
  size_t SpaceRunEnd(size_t p) const {
    const size_t q = RunEnd(p, Cls::kSpace);
    return (q - p > 1 && q < end_) ? q - 1 : q;
  }

 private:
  std::span<const uint32_t> cps_;
  size_t begin_, end_;
};

// Length of the GPT-2 word starting at p.
size_t Gpt2WordLength(const Piece& s, size_t p) {
  if (size_t n = s.Contraction(p, /*fold=*/false)) return n;
  // ' ?' before a letter, number or other run.
  const size_t q = (s.At(p) == ' ' && s.ClassAt(p + 1) != Cls::kSpace &&
                    s.ClassAt(p + 1) != Cls::kEnd) ? p + 1 : p;
  const Cls c = s.ClassAt(q);
  if (c != Cls::kSpace) return s.RunEnd(q, c) - p;
  return s.SpaceRunEnd(p) - p;
}

// Length of the LLaMA-3 word starting at p.
size_t Llama3WordLength(const Piece& s, size_t p) {
  if (size_t n = s.Contraction(p, /*fold=*/true)) return n;
  const uint32_t cp = s.At(p);
  const Cls c = s.ClassAt(p);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!IsNewline(cp) && c != Cls::kNumber &&
      (c == Cls::kLetter || s.ClassAt(p + 1) == Cls::kLetter)) {
    return s.RunEnd(p + 1, Cls::kLetter) - p;
  }
  // \p{N}{1,3}
  if (c == Cls::kNumber) {
    size_t e = p + 1;  // look no further than 3 (a long digit run must stay linear)
    while (e < p + 3 && s.ClassAt(e) == Cls::kNumber) ++e;
    return e - p;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  const size_t q = (cp == ' ' && s.ClassAt(p + 1) == Cls::kOther) ? p + 1 : p;
  if (s.ClassAt(q) == Cls::kOther) {
    size_t e = s.RunEnd(q, Cls::kOther);
    while (e < s.end() && IsNewline(s.At(e))) ++e;
    return e - p;
  }
  // \s*[\r\n]+ : through the last newline of the whitespace run.
  const size_t run_end = s.RunEnd(p, Cls::kSpace);
  for (size_t e = run_end; e > p; --e) {
    if (IsNewline(s.At(e - 1))) return e - p;
  }
  return s.SpaceRunEnd(p) - p;
}

template <typename WordLength>
void SplitPiece(const Piece& s, WordLength word_length, std::vector<size_t>* out) {
  for (size_t p = s.begin(); p < s.end();) {
    // Every class matches some alternative; max(1) guards against a bug
    // turning into an endless loop.
    const size_t n = std::max<size_t>(word_length(s, p), 1);
    out->push_back(n);
    p += n;
  }
}

// Applies `split_piece` to every piece, the way llama.cpp chains expressions.
template <typename SplitOne>
std::vector<size_t> ForEachPiece(std::span<const uint32_t> cps, const std::vector<size_t>& pieces,
                                 SplitOne split_one) {
  std::vector<size_t> out;
  out.reserve(pieces.size());
  size_t begin = 0;
  for (size_t len : pieces) {
    split_one(Piece(cps, begin, begin + len), &out);
    begin += len;
  }
  return out;
}

// A `[class]+` expression: maximal runs inside and outside the class, since
// llama.cpp keeps the unmatched text between matches as pieces too.
template <typename InClass>
void SplitRuns(const Piece& s, InClass in_class, std::vector<size_t>* out) {
  for (size_t p = s.begin(); p < s.end();) {
    const bool in = in_class(s.At(p));
    size_t e = p + 1;
    while (e < s.end() && in_class(s.At(e)) == in) ++e;
    out->push_back(e - p);
    p = e;
  }
}

// [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits.
void SplitDigitTriples(const Piece& s, std::vector<size_t>* out) {
  auto digit = [&](size_t p) { return p < s.end() && s.At(p) >= '0' && s.At(p) <= '9'; };
  size_t gap = s.begin();
  for (size_t p = s.begin(); p < s.end();) {
    if (digit(p) && digit(p + 1) && digit(p + 2)) {
      if (p > gap) out->push_back(p - gap);
      out->push_back(3);
      p += 3;
      gap = p;
    } else {
      ++p;
    }
  }
  if (s.end() > gap) out->push_back(s.end() - gap);
}

// [\p{P}\$\+<=>\^~\|] (note: no backtick, unlike Falcon's variant).
bool IsDefaultPunct(uint32_t cp) {
  if (unicode::IsPunctuation(cp)) return true;
  return cp < 0x80 && std::string_view("$+<=>^~|").find(static_cast<char>(cp)) !=
                          std::string_view::npos;
}

std::vector<size_t> SplitDefault(std::span<const uint32_t> cps) {
  std::vector<size_t> pieces{cps.size()};
  pieces = ForEachPiece(cps, pieces, [](const Piece& s, std::vector<size_t>* out) {
    SplitRuns(s, IsDefaultPunct, out);
  });
  pieces = ForEachPiece(cps, pieces, [](const Piece& s, std::vector<size_t>* out) {
    SplitPiece(s, Gpt2WordLength, out);
  });
  pieces = ForEachPiece(cps, pieces, [](const Piece& s, std::vector<size_t>* out) {
    SplitRuns(s, unicode::IsNumber, out);
  });
  return ForEachPiece(cps, pieces, SplitDigitTriples);
}

}  // namespace

absl::StatusOr<PreTokenizerConfig> LookupPreTokenizer(std::string_view name) {
  // The names llama.cpp maps to these three expressions (and the add_bos /
  // ignore_merges defaults it sets alongside).
  static constexpr std::string_view kGpt2Names[] = {
      "gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es",
      "jina-v2-de", "gigachat", "trillion", "exaone4", "mellum", "a.x-4.0", "granite-docling"};
  static constexpr std::string_view kLlama3Names[] = {
      "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"};
  if (name.empty() || name == "default") return PreTokenizerConfig{PreTokenizer::kDefault};
  if (std::find(std::begin(kGpt2Names), std::end(kGpt2Names), name) != std::end(kGpt2Names)) {
    return PreTokenizerConfig{PreTokenizer::kGpt2};
  }
  if (std::find(std::begin(kLlama3Names), std::end(kLlama3Names), name) !=
      std::end(kLlama3Names)) {
    return PreTokenizerConfig{PreTokenizer::kLlama3, /*add_bos=*/true, /*ignore_merges=*/true};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported tokenizer.ggml.pre '", absl::string_view(name.data(), name.size()),
      "': this tokenizer implements the 'gpt-2' and 'llama-bpe' (LLaMA-3) pre-tokenizers, "
      "their aliases, and 'default'; convert the model with one of those or add the "
      "pre-tokenizer to model/bpe_pretokenizer.cc"));
}

std::vector<size_t> SplitWords(PreTokenizer kind, std::span<const uint32_t> cps) {
  if (cps.empty()) return {};
  switch (kind) {
    case PreTokenizer::kGpt2:
      return ForEachPiece(cps, {cps.size()}, [](const Piece& s, std::vector<size_t>* out) {
        SplitPiece(s, Gpt2WordLength, out);
      });
    case PreTokenizer::kLlama3:
      return ForEachPiece(cps, {cps.size()}, [](const Piece& s, std::vector<size_t>* out) {
        SplitPiece(s, Llama3WordLength, out);
      });
    case PreTokenizer::kDefault:
      return SplitDefault(cps);
  }
  return {cps.size()};
}

}  // namespace bitnet::bpe
