"""Byte-level BPE (GPT-2 style): training on a text, and encoding.

Everything here mirrors what the C++ tokenizer (model/tokenizer.h) does with
`tokenizer.ggml.model = gpt2` and `tokenizer.ggml.pre = gpt-2`, so the ids the
model was trained on are the ids the engine produces:

* pre-tokenization with the GPT-2 expression
  's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
  (hand-written, as in model/bpe_pretokenizer.cc, since Debian's python3 has
  no \\p{..} classes in `re`);
* GPT-2's byte-to-unicode mapping of the bytes of each word;
* merges applied lowest rank first, leftmost first among equal ranks.

Vocabulary layout: ids 0-255 are the 256 byte tokens in byte order, then one
token per merge that produced a new text (in merge order), then BOS `<s>` and
EOS `</s>` (control tokens).
"""

import collections
import json
import unicodedata

BOS_TEXT = "<s>"
EOS_TEXT = "</s>"
TOKEN_NORMAL = 1
TOKEN_CONTROL = 3

# Unicode White_Space outside ASCII (what model/unicode_text.cc uses).
_WHITE_SPACE_NON_ASCII = {0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
_WHITE_SPACE_NON_ASCII.update(range(0x2000, 0x200B))


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character mapping."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


BYTE_TO_TEXT = bytes_to_unicode()
TEXT_TO_BYTE = {v: k for k, v in BYTE_TO_TEXT.items()}

_LETTER, _NUMBER, _SPACE, _OTHER, _END = range(5)


def _classify(ch):
    cp = ord(ch)
    if cp < 0x80:
        if ch.isalpha():
            return _LETTER
        if ch.isdigit():
            return _NUMBER
        if cp == 0x20 or 0x09 <= cp <= 0x0D:
            return _SPACE
        return _OTHER
    cat = unicodedata.category(ch)
    if cat[0] == "L":
        return _LETTER
    if cat[0] == "N":
        return _NUMBER
    if cp in _WHITE_SPACE_NON_ASCII:
        return _SPACE
    return _OTHER


def pretokenize(text):
    """Splits text into GPT-2 pre-tokenizer words (strings)."""
    n = len(text)
    cls = [_classify(c) for c in text] + [_END]
    words = []
    p = 0
    while p < n:
        length = _word_length(text, cls, p, n)
        words.append(text[p:p + length])
        p += length
    return words


def _run_end(cls, p, c):
    while cls[p] == c:
        p += 1
    return p


def _word_length(text, cls, p, n):
    # Contractions (case-sensitive in GPT-2's expression).
    if text[p] == "'" and p + 1 < n:
        a = text[p + 1]
        if a in "stmd":
            return 2
        if p + 2 < n and text[p + 1:p + 3] in ("re", "ve", "ll"):
            return 3
    q = p + 1 if (text[p] == " " and cls[p + 1] not in (_SPACE, _END)) else p
    c = cls[q]
    if c != _SPACE:
        return _run_end(cls, q, c) - p
    # \s+(?!\S)|\s+ : a run followed by text leaves its last space to the next word.
    e = _run_end(cls, p, _SPACE)
    if e - p > 1 and e < n:
        e -= 1
    return e - p


def word_symbols(word):
    return [BYTE_TO_TEXT[b] for b in word.encode("utf-8")]


def train(text, vocab_size, log=print):
    """Learns merges until the vocabulary (bytes + merges + BOS/EOS) has
    `vocab_size` tokens. Ties between equally frequent pairs go to the
    lexicographically largest pair, so the result is deterministic."""
    target = vocab_size - 2 - 256
    if target < 0:
        raise ValueError("vocab_size must be at least 258")
    counts = collections.Counter(pretokenize(text))
    words = [word_symbols(w) for w in counts]
    freq = [counts[w] for w in counts]
    pair_count = collections.Counter()
    pair_words = collections.defaultdict(set)
    for i, syms in enumerate(words):
        for a, b in zip(syms, syms[1:]):
            pair_count[(a, b)] += freq[i]
            pair_words[(a, b)].add(i)
    tokens = [BYTE_TO_TEXT[b] for b in range(256)]
    known = set(tokens)
    merges = []
    new_tokens = 0
    while new_tokens < target and pair_count:
        best = max(pair_count.items(), key=lambda kv: (kv[1], kv[0]))[0]
        a, b = best
        merged = a + b
        merges.append(best)
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
            new_tokens += 1
        for i in list(pair_words[best]):
            syms = words[i]
            f = freq[i]
            for x, y in zip(syms, syms[1:]):
                pair_count[(x, y)] -= f
                if pair_count[(x, y)] <= 0:
                    del pair_count[(x, y)]
                pair_words[(x, y)].discard(i)
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            words[i] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                pair_words[(x, y)].add(i)
        pair_words.pop(best, None)
        if len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges, {len(tokens)} tokens")
    tokens += [BOS_TEXT, EOS_TEXT]
    return tokens, [f"{a} {b}" for a, b in merges]


class Tokenizer:
    """Encoder/decoder over a trained vocabulary (same results as the C++ one)."""

    def __init__(self, tokens, merges):
        self.tokens = list(tokens)
        self.merges = list(merges)
        self.id_of = {t: i for i, t in enumerate(self.tokens)}
        if len(self.id_of) != len(self.tokens):
            raise ValueError("duplicate token texts")
        self.rank = {}
        for r, line in enumerate(self.merges):
            a, b = line.split(" ", 1)
            self.rank.setdefault((a, b), r)
        self.bos = self.id_of[BOS_TEXT]
        self.eos = self.id_of[EOS_TEXT]
        self._cache = {}

    @property
    def n_vocab(self):
        return len(self.tokens)

    def token_types(self):
        return [TOKEN_CONTROL if t in (BOS_TEXT, EOS_TEXT) else TOKEN_NORMAL for t in self.tokens]

    def _encode_word(self, word):
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        syms = word_symbols(word)
        while len(syms) > 1:
            best = None
            for j in range(len(syms) - 1):
                r = self.rank.get((syms[j], syms[j + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, j)
            if best is None:
                break
            j = best[1]
            syms[j:j + 2] = [syms[j] + syms[j + 1]]
        ids = [self.id_of[s] for s in syms]
        self._cache[word] = ids
        return ids

    def encode(self, text, add_bos=False):
        ids = [self.bos] if add_bos else []
        for w in pretokenize(text):
            ids.extend(self._encode_word(w))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in (self.bos, self.eos):
                continue
            out.extend(TEXT_TO_BYTE[c] for c in self.tokens[i])
        return out.decode("utf-8", errors="replace")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokens": self.tokens, "merges": self.merges}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["tokens"], d["merges"])
