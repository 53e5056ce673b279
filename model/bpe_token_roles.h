// Which tokens end generation, found the way llama.cpp finds them: the EOS and
// EOT ids from metadata plus tokens recognised by their text (chat-template
// end markers such as "<|eot_id|>", FIM padding tokens, ...).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitnet::bpe {

struct TokenRoles {
  int32_t eot = -1;                    // as given, else found by text
  std::vector<int32_t> end_of_generation;  // sorted, unique
  // Tokens llama.cpp re-types as control because their text marks them as
  // special even when the vocabulary's token_type says otherwise.
  std::vector<int32_t> force_control;
};

TokenRoles FindTokenRoles(std::span<const std::string> tokens, int32_t eos, int32_t eot);

}  // namespace bitnet::bpe
