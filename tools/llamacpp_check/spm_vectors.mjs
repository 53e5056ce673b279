// Reference encodings of llama.cpp's SentencePiece (`llama`) tokenizer, for
// tests/spm_tokenizer_test.cc (through node-llama-cpp's prebuilt llama.cpp):
//   node spm_vectors.mjs MODEL.gguf TEXTS.jsonl OUT.jsonl
// TEXTS.jsonl holds {"text": ...} objects (the LLaMA-3 corpus in tests/data
// is reused: English, code, numbers, whitespace runs, many scripts, emoji,
// mojibake); a few SentencePiece-specific strings are added. Each output line
// is {"text", "ids", "ids_special"}: llama_tokenize without BOS, with special
// tokens parsed as text and as tokens.
import fs from 'node:fs';
import {getLlama} from 'node-llama-cpp';

const [modelPath, textsPath, outPath] = process.argv.slice(2);
if (!modelPath || !textsPath || !outPath) {
  console.error('usage: node spm_vectors.mjs MODEL.gguf TEXTS.jsonl OUT.jsonl');
  process.exit(2);
}
const texts = fs.readFileSync(textsPath, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
texts.push('<s>hello</s>', 'a<s>b', ' <s> spaced </s> ', '<unk>', '\u2581literal meta \u2581\u2581 symbol',
           '<0x41> looks like a byte token', 'the theory of them', '   three leading spaces',
           'trailing spaces   ', 'x', '');
const llama = await getLlama({gpu: false, build: 'never', logLevel: 'error'});
const model = await llama.loadModel({modelPath});
const lines = [];
for (const text of [...new Set(texts)]) {
  const ids = Array.from(model.tokenize(text, false));
  const ids_special = Array.from(model.tokenize(text, true));
  lines.push(JSON.stringify({text, ids, ids_special}));
}
fs.writeFileSync(outPath, lines.join('\n') + '\n');
console.error(`${outPath}: ${lines.length} strings`);
process.exit(0);
