#!/usr/bin/python3
"""Evaluates an exported model (export.py's PREFIX.json/.bin) with PyTorch,
computing what the C++ engine computes (model.py's exact mode), and writes the
reference data the C++ test (tests/trained_model_test.cc) checks against:

* perplexity of a text file by llama.cpp's method (as tools/perplexity.cc):
  the text is encoded with BOS, cut into windows of --window tokens, the
  first token of each window is replaced by BOS, and the second half of each
  window is scored;
* the token ids of that text (to check that the C++ tokenizer encodes it
  identically);
* greedy continuations of prompts, with the gap between the best and the
  second-best logit at every step (a tiny gap is a genuine tie that float
  rounding may break either way).

    /usr/bin/python3 tools/train/evaluate.py --export WORK/export \
        --text models/austen-heldout.txt --out tests/data/trained_model_reference.json
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export as exporter  # noqa: E402

DEFAULT_PROMPTS = [
    "It is a truth universally acknowledged",
    "Elizabeth",
    "\"My dear Mr. Bennet,\" said his lady to him one day,",
    "Emma Woodhouse, handsome, clever, and rich,",
    "The family of Dashwood",
    "She was",
    "\"I am",
    "Mr. Darcy",
    "In the evening",
    "Anne Elliot",
]


@torch.no_grad()
def perplexity(m, ids, bos, window):
    n = len(ids)
    w = min(window, n)
    first = min(w // 2, w - 2)
    nll, scored = 0.0, 0
    for c in range(n // w):
        chunk = list(ids[c * w:(c + 1) * w])
        chunk[0] = bos
        logits = m(torch.tensor([chunk]), exact=True)[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        for pos in range(first, w - 1):
            nll -= logp[pos, chunk[pos + 1]].item()
            scored += 1
    return {"window": w, "windows": n // w, "tokens_total": n, "tokens_scored": scored,
            "mean_nll": nll / scored, "perplexity": math.exp(nll / scored)}


@torch.no_grad()
def greedy(m, prompt_ids, n_new):
    ids = list(prompt_ids)
    out, gaps = [], []
    for _ in range(n_new):
        logits = m(torch.tensor([ids]), exact=True)[0, -1]
        top = torch.topk(logits, 2)
        nxt = int(top.indices[0])
        gaps.append(float(top.values[0] - top.values[1]))
        out.append(nxt)
        ids.append(nxt)
    return out, gaps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", required=True, help="export prefix (PREFIX.json, PREFIX.bin)")
    p.add_argument("--text", required=True, help="held-out text file")
    p.add_argument("--window", type=int, default=0, help="perplexity window (default: the model's context)")
    p.add_argument("--n-predict", type=int, default=32, help="greedy tokens per prompt")
    p.add_argument("--prompt", action="append", help="prompt (repeatable; default: 10 built-in prompts)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the reference JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    m, tok, meta = exporter.load_export(args.export)
    window = args.window or meta["hparams"]["n_ctx"]
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text, add_bos=True)
    ppl = perplexity(m, ids, tok.bos, window)
    print(f"perplexity {ppl['perplexity']:.4f} over {ppl['tokens_scored']} scored tokens "
          f"({ppl['windows']} windows of {ppl['window']})", flush=True)
    prompts = []
    for prompt in args.prompt or DEFAULT_PROMPTS:
        pids = tok.encode(prompt, add_bos=True)
        gen, gaps = greedy(m, pids, args.n_predict)
        text_out = tok.decode(gen)
        print(f"{prompt!r} -> {text_out!r} (min gap {min(gaps):.4f})", flush=True)
        prompts.append({"prompt": prompt, "prompt_ids": pids, "greedy_ids": gen,
                        "top_gap": gaps, "text": text_out})
    if args.out:
        ref = {
            "model_name": meta["name"],
            "text_file": os.path.basename(args.text),
            "text_ids": ids,
            "perplexity": ppl,
            "n_predict": args.n_predict,
            "prompts": prompts,
            "note": "written by tools/train/evaluate.py (PyTorch, exact mode: fp16 embedding and "
                    "KV cache, per-token int8 activations, ternary weights)",
        }
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
