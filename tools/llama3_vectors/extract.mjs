// Extracts the LLaMA-3 vocabulary and merges shipped by the npm package
// `llama3-tokenizer-js` (an implementation independent of ours) and writes:
//
//   <out>/llama3_tokenizer.bin   the vocabulary + merges in a compact binary form
//                                (read by tools/vocab_pack.cc; format below)
//   <out>/llama3_vectors.jsonl   reference encodings: one JSON object per line,
//                                {"text": ..., "ids": [...]} (no BOS/EOS)
//
// Run manually (CI only reads the committed outputs):
//   cd tools/llama3_vectors && npm install && npm run generate
//
// Compact format (all integers little-endian; "varint" = unsigned LEB128):
//   "BNVP" magic, u32 version = 1, u32 n_tokens, u32 n_merges
//   per token:  u8 type (1 = normal, 3 = control), varint n, n raw bytes
//               (normal tokens: the bytes the token stands for, i.e. the
//               GPT-2 byte-to-unicode mapping undone; control tokens: their text)
//   per merge:  varint (result id - previous merge's result id), varint k:
//               the merge joins the first k bytes of token `result` with the
//               rest. Merges are in rank order and their result ids never
//               decrease, so both numbers are small.
import fs from 'node:fs';
import path from 'node:path';
import tokenizer from 'llama3-tokenizer-js';

const outDir = process.argv[2] ?? '.';
const PACKAGE = 'llama3-tokenizer-js@1.2.0';

// ---------------------------------------------------------------------------
// GPT-2 byte <-> unicode mapping (to store raw bytes instead of mapped text).

const unicodeToByte = (() => {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; ++b) bs.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) bs.push(b);
  for (let b = 0xae; b <= 0xff; ++b) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; ++b) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n += 1;
    }
  }
  const m = new Map();
  bs.forEach((b, i) => m.set(String.fromCodePoint(cs[i]), b));
  return m;
})();

function mappedToBytes(text) {
  const out = [];
  for (const ch of text) {
    const b = unicodeToByte.get(ch);
    if (b === undefined) throw new Error(`token text ${JSON.stringify(text)} has an unmapped character`);
    out.push(b);
  }
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------
// Compact vocabulary file.

class ByteWriter {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(Buffer.from([v])); }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(b); }
  varint(v) {
    const out = [];
    do {
      let byte = v & 0x7f;
      v = Math.floor(v / 128);
      if (v > 0) byte |= 0x80;
      out.push(byte);
    } while (v > 0);
    this.parts.push(Buffer.from(out));
  }
  bytes(b) { this.parts.push(b); }
  buffer() { return Buffer.concat(this.parts); }
}

function writeVocab(file) {
  const vocab = tokenizer.vocabById;
  const specials = new Set();
  for (let id = 0; id < vocab.length; ++id) {
    if (/^<\|.*\|>$/.test(vocab[id]) && id >= 128000) specials.add(id);
  }
  const raw = vocab.map((t, id) => (specials.has(id) ? Buffer.from(t, 'utf8') : mappedToBytes(t)));
  const w = new ByteWriter();
  w.bytes(Buffer.from('BNVP', 'ascii'));
  w.u32(1);
  w.u32(vocab.length);
  w.u32(tokenizer.merges.size);
  for (let id = 0; id < vocab.length; ++id) {
    w.u8(specials.has(id) ? 3 : 1);
    w.varint(raw[id].length);
    w.bytes(raw[id]);
  }
  // Map iteration order is insertion order, which is merge rank order.
  let prev = 0;
  let checked = 0;
  for (const key of tokenizer.merges.keys()) {
    const [a, b] = key.split(' ');
    const result = tokenizer.vocabByString.get(a + b);
    if (result === undefined || result < prev) {
      throw new Error(`merge "${key}" breaks the compact form's assumptions`);
    }
    w.varint(result - prev);
    w.varint(mappedToBytes(a).length);
    prev = result;
    ++checked;
  }
  fs.writeFileSync(file, w.buffer());
  return { tokens: vocab.length, merges: checked, specials: specials.size };
}

// ---------------------------------------------------------------------------
// Test strings: hand-written cases plus seeded random combinations.

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const english = [
  'Hello world!',
  'The quick brown fox jumps over the lazy dog.',
  'It was the best of times, it was the worst of times.',
  "I can't believe it's not butter; we'll see, they'd say, you're right, I've done it, I'm here.",
  "DON'T SHOUT. IT'S LOUD. WE'LL KNOW. THEY'D BE. YOU'RE. I'VE. I'M.",
  "O'Neil's dog's bone's owner",
  'A man, a plan, a canal: Panama',
  'Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
  'e.g. i.e. etc. Mr. Mrs. Dr. St. a.m. p.m. U.S.A.',
  'Well... that was unexpected!!! Really?! No way?!?',
  'camelCaseWords snake_case_words kebab-case-words SCREAMING_SNAKE PascalCase',
  'The year 1984 had 366 days; 2^10 = 1024 and 3.14159 is pi.',
  '  leading spaces and trailing spaces  ',
  'tabs\tbetween\twords\t\tand\t\t\tmore',
  'Line one\nLine two\n\nLine four\r\nWindows line\rOld Mac line',
  'Email me at someone@example.com or visit https://www.example.org/path?query=1&x=y#frag',
  'C:\\Users\\name\\Documents\\file.txt and /usr/local/bin/bitnet-convert',
  '#hashtag @mention $PRICE 100% 3/4 cup & more',
  'Q: What is 2+2? A: 4.',
  '“Smart quotes” and ‘single smart quotes’ — em dash – en dash … ellipsis',
];

const code = [
  'int main(int argc, char** argv) {\n  std::cout << "Hello" << std::endl;\n  return 0;\n}',
  'def f(x):\n    if x > 0:\n        return x ** 2\n    return -x  # negative\n',
  'const add = (a, b) => a + b;\nconsole.log(add(1, 2));',
  'fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}',
  'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;',
  '<!DOCTYPE html><html><head><title>T</title></head><body><p class="x">Hi</p></body></html>',
  '{"key": [1, 2.5, -3e10, true, false, null], "nested": {"a": "b\\n"}}',
  'for i in $(seq 1 10); do echo "$i" | grep -E \'^[0-9]+$\' >> out.txt; done',
  '^(?:[a-z0-9!#$%&\'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&\'*+/=?^_`{|}~-]+)*)$',
  '\\begin{equation} E = mc^2 \\quad \\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2} \\end{equation}',
  '# Title\n\n- item one\n- item two\n\n```python\nprint("x")\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |',
  'x+=1;y-=2;z*=3;w/=4;a%=5;b<<=1;c>>=2;d&=e|f^g;h=!i&&j||k;',
  'template <typename T, size_t N> struct Array { T data[N]; constexpr size_t size() const noexcept { return N; } };',
  '    indented with four spaces\n\tindented with a tab\n        eight spaces',
  'if (a != b && c == d || e <= f) { /* comment */ } // line comment',
  'arr[0][1] = obj->field.method()?.value ?? default_value;',
  'public static void Main(string[] args) => Console.WriteLine($"{args.Length} args");',
  '0x7FFFFFFF 0b1010 0o755 1_000_000 1e-9 .5 5. 6.02214076e23',
  '@decorator\nclass Foo(Base, metaclass=Meta):\n    __slots__ = ("a", "b")',
];

const numbers = [
  '1', '12', '123', '1234', '12345', '123456', '1234567890',
  '3.14159265358979323846264338327950288419716939937510',
  '-42', '+7', '1,000,000.00', '$1,234.56', '€99,99', '¥10000', '50%', '1st 2nd 3rd 4th',
  '2024-04-18T12:34:56Z', '12:30pm', '+1 (555) 123-4567', '192.168.0.1', '::1', 'v1.2.3-rc.4',
  '٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '０１２３４５６７８９', '²³¹ ½ ¾ ⅓ Ⅻ ⅷ', '𝟘𝟙𝟚𝟛', '一二三 四五六',
  '9'.repeat(100), '1234567'.repeat(7), '0.0000001', '1e308', 'NaN Infinity -0',
];

const whitespace = [
  ' ', '  ', '   ', '    ', ' '.repeat(17), '\t', '\t\t', '\n', '\n\n', '\n\n\n\n', '\r\n', '\r\n\r\n',
  ' \n', '\n ', ' \n ', '\t\n\t', 'a b', 'a  b', 'a   b', 'a\tb', 'a\nb', 'a\n\nb', 'a \nb', 'a\n b',
  'a \n \n b', 'end with space ', 'end with newline\n', ' start with space', '\nstart with newline',
  'nbsp\u00a0here', 'ideographic\u3000space', 'em\u2003space', 'thin\u2009space', 'zero\u200bwidth',
  'vertical\vtab', 'form\ffeed', 'line\u2028separator', 'para\u2029separator', 'next\u0085line',
  'mixed \t \n \r\n \u00a0 \u3000 end', ' '.repeat(300), '\n'.repeat(50), 'x' + ' '.repeat(40) + 'y',
];

const scripts = [
  '你好，世界！我是一个语言模型。', '今日は良い天気ですね。カタカナとひらがな。', '안녕하세요, 세계! 한국어 문장입니다.',
  'مرحبا بالعالم! هذه جملة عربية.', 'שלום עולם! זה משפט בעברית.', 'नमस्ते दुनिया! यह हिंदी वाक्य है।',
  'ওহে বিশ্ব! এটি একটি বাংলা বাক্য।', 'வணக்கம் உலகம்! இது தமிழ் வாக்கியம்.', 'สวัสดีชาวโลก! นี่คือประโยคภาษาไทย',
  'ສະບາຍດີ ໂລກ', 'សួស្តី​ពិភពលោក', 'မင်္ဂလာပါ ကမ္ဘာ', 'გამარჯობა მსოფლიო!', 'Բարեւ աշխարհ!',
  'Γειά σου Κόσμε! Ελληνικά.', 'Привет, мир! Это русское предложение.', 'Привіт, світе! Українська мова: ґ є ї.',
  'ሰላም ለዓለም', 'བཀྲ་ཤིས་བདེ་ལེགས།', 'ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ', 'ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ', 'ආයුබෝවන් ලෝකය', 'નમસ્તે વિશ્વ',
  'హలో ప్రపంచం', 'Xin chào thế giới! Tiếng Việt có dấu.', 'İstanbul ılık ışık ŞĞÜÖÇ', 'Straße Größe Maß',
  'Zażółć gęślą jaźń', 'Þetta er íslenska: ðþæö', 'Ẹ kú àárọ̀', 'Z̴̡͉a̷͓̓l̶̰̈́g̸̱͂o̵̧͆ text', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙',
  '𐌀𐌁𐌂 old italic', '𠀀𠀁𠀂 CJK ext B', '⠓⠑⠇⠇⠕ braille', 'ᚠᚢᚦᚨᚱᚲ runes', 'ᄀᄁᄂ 한글 자모 ㄱㄴㄷ',
  'Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ', 'ﬁ ﬂ ligatures', 'café naïve résumé coöperate', 'e\u0301 vs é (combining)',
  'Ñandú pingüino ¿Qué? ¡Sí!', 'Ελληνικά και English mixed 中文 mixed',
];

const emoji = [
  '😀', '😀😃😄😁', '👍🏽', '👍🏿👍🏻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇯🇵🇺🇸🇩🇪', '1️⃣ #️⃣', '❤️ ♥ ❤',
  '🤖 robots 🚀 rockets', 'I ❤️ NY', '🙈🙉🙊', '🧑🏾‍💻 coding', 'emoji at end 🎉', '🎉 emoji at start',
  '🫠🫡🫥', '☕️ coffee', '©®™', '⌚⌛⏰', '🐍🦀🐹🦫',
];

const odd = [
  'Ã©tÃ© dÃ©jÃ  vu', 'ï»¿BOM mojibake', '\ufeffreal BOM at start', '\\xff\\xfe\\x00', '%C3%A9%20%E2%9C%93',
  '\ufffd replacement \ufffd\ufffd', 'nonchar \uffff and \u{10FFFF}', 'private use \ue000\uf8ff \u{F0000}',
  'control \u0001\u0002\u001f chars', '\u001b[31mred\u001b[0m ansi', 'delete\u007fchar', 'null\u0000byte',
  'soft\u00adhyphen', 'zwj\u200dzwnj\u200c', 'rtl \u202eoverride\u202c', 'bidi \u2066isolate\u2069',
  'variation\ufe0fselector', 'half\uff61width \uff76\uff80\uff76\uff85', '\u00c3\u0083\u00c2\u00a9 double mojibake',
  '&lt;tag&gt; &amp; &#x27; &quot;', 'Ã¢â‚¬â„¢ smart quote mojibake', '\\u00e9 escaped', 'ðŸ˜€ emoji mojibake',
];

const special = [
  '<|begin_of_text|>Hello<|end_of_text|>',
  '<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>',
  '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  'text<|eot_id|>more text', '<|reserved_special_token_5|>', '<|reserved_special_token_247|>x',
  '<|python_tag|>print(1)<|eom_id|>', '<|finetune_right_pad_id|>', '<|not_a_special_token|>',
  '<|eot_id', 'eot_id|>', '<| eot_id |>', '<|EOT_ID|>', '<|eot_id|><|eot_id|>',
];

const punct = [
  '!!!', '???', '...', '!?!?', '---', '--->', '<---', '=====', '***', '~~~', '@#$%^&*()', '[]{}()<>',
  '«guillemets»', '„German quotes“', '「Japanese quotes」', '。、・', '،؛؟', '¡¿', '§¶†‡', '→←↑↓⇒',
  '∀x∈ℝ: x²≥0', '≠≤≥±×÷', '√∞∑∏∫', '°C °F', '"double" \'single\' `back`', '.,;:', '(nested (parens (deep)))',
];

function randomCodepointString(rand, len) {
  const ranges = [
    [0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff],
    [0x900, 0x97f], [0xe00, 0xe7f], [0x3040, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xad00],
    [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x2000, 0x206f], [0x2190, 0x22ff], [0x10000, 0x1007f],
    [0x9, 0xd], [0x1d400, 0x1d4ff], [0xff00, 0xffef],
  ];
  let s = '';
  for (let i = 0; i < len; ++i) {
    const [lo, hi] = ranges[Math.floor(rand() * ranges.length)];
    let cp = lo + Math.floor(rand() * (hi - lo + 1));
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;  // never a lone surrogate
    s += String.fromCodePoint(cp);
  }
  return s;
}

function buildCorpus() {
  const fixed = [...english, ...code, ...numbers, ...whitespace, ...scripts, ...emoji, ...odd, ...special, ...punct];
  const long = [
    english.join(' ') + '\n\n' + scripts.join(' ') + '\n' + code.join('\n'),
    'a'.repeat(1000),
    'ab'.repeat(300),
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(20),
  ];
  const pools = [english, code, numbers, whitespace, scripts, emoji, odd, special, punct];
  const seps = ['', ' ', '  ', '\n', '\n\n', '\t', ', ', '. ', ' \n', '\r\n', '   \n\n'];
  const rand = mulberry32(20240418);
  const random = [];
  for (let i = 0; i < 420; ++i) {
    if (i % 7 === 6) {
      random.push(randomCodepointString(rand, 1 + Math.floor(rand() * 40)));
      continue;
    }
    const n = 2 + Math.floor(rand() * 5);
    let s = '';
    for (let k = 0; k < n; ++k) {
      const pool = pools[Math.floor(rand() * pools.length)];
      const frag = pool[Math.floor(rand() * pool.length)];
      s += (k ? seps[Math.floor(rand() * seps.length)] : '') + frag;
    }
    random.push(s);
  }
  const all = [...fixed, ...long, ...random];
  return [...new Set(all)];
}

// The package runs LLaMA-3's pre-tokenizer regex with JavaScript's \s, which
// counts U+FEFF as white space and not U+0085; the reference implementations
// (tiktoken, Hugging Face tokenizers, llama.cpp) use Unicode White_Space,
// which does the opposite. Strings whose split depends on that difference are
// not valid references, so they are detected by splitting with both
// definitions and are stored without ids.
const LLAMA3_SPLIT = "(?:'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" +
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const WHITE_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const jsSplit = new RegExp(LLAMA3_SPLIT, 'gu');
const unicodeSplit = new RegExp(
    LLAMA3_SPLIT.replaceAll('\\S', `[^${WHITE_SPACE}]`).replaceAll('[^\\s', `[^${WHITE_SPACE}`)
        .replaceAll('\\s', `[${WHITE_SPACE}]`), 'gu');
function jsWhitespaceDiverges(text) {
  const a = [...text.matchAll(jsSplit)].map((m) => m[0]);
  const b = [...text.matchAll(unicodeSplit)].map((m) => m[0]);
  return a.length !== b.length || a.some((x, i) => x !== b[i]);
}

const bomKeepingDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
function decodeKeepingBom(ids) {
  const bytes = ids.map((id) => {
    const t = tokenizer.vocabById[id];
    return /^<\|.*\|>$/.test(t) && id >= 128000 ? Buffer.from(t, 'utf8') : mappedToBytes(t);
  });
  return bomKeepingDecoder.decode(Buffer.concat(bytes));
}

// ---------------------------------------------------------------------------

function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const vocabFile = path.join(outDir, 'llama3_tokenizer.bin');
  const counts = writeVocab(vocabFile);

  const corpus = buildCorpus();
  const lines = [];
  let divergent = 0;
  for (const text of corpus) {
    if (jsWhitespaceDiverges(text)) {
      // Stored without ids: the package's encoding is not the reference's here.
      lines.push(JSON.stringify({ text, skipped: 'JavaScript \\s differs from Unicode White_Space' }));
      ++divergent;
      continue;
    }
    const ids = tokenizer.encode(text, { bos: false, eos: false });
    // The package's decode() drops a leading U+FEFF (TextDecoder's BOM
    // handling), so the round trip is checked on the raw token bytes.
    if (decodeKeepingBom(ids) !== text) {
      throw new Error(`${PACKAGE} does not round-trip ${JSON.stringify(text)}`);
    }
    lines.push(JSON.stringify({ text, ids }));
  }
  const vectorsFile = path.join(outDir, 'llama3_vectors.jsonl');
  fs.writeFileSync(vectorsFile, lines.join('\n') + '\n');
  console.error(`${vocabFile}: ${counts.tokens} tokens (${counts.specials} control), ` +
                `${counts.merges} merges, ${fs.statSync(vocabFile).size} bytes`);
  console.error(`${vectorsFile}: ${lines.length - divergent} strings from ${PACKAGE} ` +
                `(+${divergent} stored without ids: JavaScript \\s), ` +
                `${fs.statSync(vectorsFile).size} bytes`);
}

main();
