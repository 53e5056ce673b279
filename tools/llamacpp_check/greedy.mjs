// Greedy ids from llama.cpp (through node-llama-cpp's prebuilt CPU build):
//   node greedy.mjs MODEL.gguf 288,84,104 N
// prints {"arch": ..., "ids": [...]} or exits non-zero if llama.cpp cannot
// load the model.
import {getLlama} from "node-llama-cpp";

const [modelPath, idsArg, nArg] = process.argv.slice(2);
if (!modelPath || !idsArg || !nArg) {
  console.error("usage: node greedy.mjs MODEL.gguf ID,ID,... N");
  process.exit(2);
}
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 256, batchSize: 256, threads: 1});
const sequence = context.getSequence();
const ids = [];
for await (const token of sequence.evaluate(idsArg.split(",").map(Number), {temperature: 0})) {
  ids.push(token);
  if (ids.length >= Number(nArg)) break;
}
console.log(JSON.stringify({arch: model.fileInfo.metadata.general.architecture, ids}));
process.exit(0);
