#include "model/bpe_special_split.h"

namespace bitnet::bpe {
namespace {

// Splits one plain-text fragment at every occurrence of `special`.
void SplitFragment(std::string_view text, const Fragment& frag, const SpecialToken& special,
                   std::vector<Fragment>* out) {
  const std::string_view piece = text.substr(frag.offset, frag.length);
  size_t start = 0;
  for (size_t hit = piece.find(special.text); hit != std::string_view::npos;
       hit = piece.find(special.text, start)) {
    if (hit > start) out->push_back({-1, frag.offset + start, hit - start});
    out->push_back({special.id, frag.offset + hit, special.text.size()});
    start = hit + special.text.size();
  }
  if (start < piece.size()) out->push_back({-1, frag.offset + start, piece.size() - start});
}

}  // namespace

std::vector<Fragment> SplitSpecialTokens(std::string_view text,
                                         std::span<const SpecialToken* const> specials) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const SpecialToken* special : specials) {
    if (special->text.empty()) continue;  // would match everywhere
    next.clear();
    next.reserve(frags.size() + 2);
    for (const Fragment& frag : frags) {
      if (frag.token >= 0) {
        next.push_back(frag);
      } else {
        SplitFragment(text, frag, *special, &next);
      }
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace bitnet::bpe
