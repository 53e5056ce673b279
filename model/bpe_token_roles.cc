#include "model/bpe_token_roles.h"

#include <algorithm>
#include <string_view>

namespace bitnet::bpe {
namespace {

using Texts = std::span<const std::string_view>;

// llama.cpp's lists (src/llama-vocab.cpp), by role.
constexpr std::string_view kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                             "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
                             "<｜end▁of▁sentence｜>", "<end_of_utterance>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                             "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                             "<|end_of_text|>", "<end_of_utterance>"};
// Fill-in-the-middle tokens: pad/repo/file-separator also end generation.
constexpr std::string_view kFimPreTexts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>"};
constexpr std::string_view kFimSufTexts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>"};
constexpr std::string_view kFimMidTexts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>"};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};

bool In(Texts texts, std::string_view s) {
  return std::find(texts.begin(), texts.end(), s) != texts.end();
}

// Lowest id whose text is in `texts`, or -1.
int32_t FirstWithText(std::span<const std::string> tokens, Texts texts) {
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (In(texts, tokens[id])) return static_cast<int32_t>(id);
  }
  return -1;
}

void SortUnique(std::vector<int32_t>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

TokenRoles FindTokenRoles(std::span<const std::string> tokens, int32_t eos, int32_t eot) {
  TokenRoles roles;
  auto detect = [&](Texts texts, bool ends_generation) {
    const int32_t id = FirstWithText(tokens, texts);
    if (id < 0) return id;
    roles.force_control.push_back(id);
    if (ends_generation) roles.end_of_generation.push_back(id);
    return id;
  };
  roles.eot = eot >= 0 ? eot : detect(kEotTexts, /*ends_generation=*/false);
  detect(kEomTexts, true);
  detect(kFimPreTexts, false);
  detect(kFimSufTexts, false);
  detect(kFimMidTexts, false);
  detect(kFimPadTexts, true);
  detect(kFimRepTexts, true);
  detect(kFimSepTexts, true);
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (In(kEogTexts, tokens[id])) {
      roles.end_of_generation.push_back(static_cast<int32_t>(id));
      roles.force_control.push_back(static_cast<int32_t>(id));
    }
  }
  if (eos >= 0) roles.end_of_generation.push_back(eos);
  if (roles.eot >= 0) roles.end_of_generation.push_back(roles.eot);
  SortUnique(&roles.end_of_generation);
  SortUnique(&roles.force_control);
  return roles;
}

}  // namespace bitnet::bpe
