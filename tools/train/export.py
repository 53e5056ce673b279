#!/usr/bin/python3
"""Exports a training checkpoint to the `bitnet-trained` interchange files,
which `bitnet-import-trained` turns into a GGUF with the project's writer.

    /usr/bin/python3 tools/train/export.py --checkpoint WORK/checkpoint.pt \
        --out WORK/export --name austen-bitnet

writes WORK/export.json and WORK/export.bin.

Format (version 1). The JSON holds:
  format "bitnet-trained", version 1, arch "bitnet-b1.58", name,
  hparams {n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx,
           rope_base, rms_eps},
  tokenizer {model "gpt2", pre "gpt-2", tokens [...], token_types [...],
             merges ["a b", ...], bos, eos, add_bos},
  tensors [{name, shape, dtype, offset, nbytes, kind, scale?}],
  provenance {...free-form: data, seed, steps...}.
Tensor names are the GGUF names (blk.N.attn_q.weight, ...). `shape` is
[rows, cols] for matrices (PyTorch's [out, in]; the GGUF ne is reversed) and
[n] for vectors; the bytes (little-endian, at `offset` in the .bin) are
row-major, so each row is contiguous as ggml stores it. kind "ternary": dtype
i8 codes in {-1, 0, 1} and `scale` (an fp16-representable f32) - the weight
is codes * scale, exactly what the QAT forward used. kind "float": dtype f32.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import model as bitnet_model  # noqa: E402

LINEAR_NAMES = {
    "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
    "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down",
}
NORM_NAMES = ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm")


def load_checkpoint(path):
    state = torch.load(path)
    m = bitnet_model.BitNetModel(state["config"])
    m.load_state_dict(state["model"])
    m.eval()
    return m, state


def gguf_tensors(m):
    """(name, kind, array, scale) in GGUF order: embedding, output norm, layers."""
    out = [("token_embd.weight", "float", m.token_embd.weight.detach().numpy(), None),
           ("output_norm.weight", "float", m.output_norm.weight.detach().numpy(), None)]
    for i, blk in enumerate(m.blocks):
        p = f"blk.{i}."
        for norm in NORM_NAMES:
            out.append((p + norm + ".weight", "float", getattr(blk, norm).weight.detach().numpy(), None))
        for attr, gname in LINEAR_NAMES.items():
            codes, scale = bitnet_model.ternary_codes(getattr(blk, attr).weight.detach())
            out.append((p + gname + ".weight", "ternary", codes.numpy().astype(np.int8), float(scale)))
    return out


def write_export(m, tok, name, out_prefix, provenance):
    tensors, offset = [], 0
    with open(out_prefix + ".bin", "wb") as f:
        for tname, kind, arr, scale in gguf_tensors(m):
            arr = np.ascontiguousarray(arr if kind == "ternary" else arr.astype("<f4"))
            data = arr.tobytes()
            pad = (-offset) % 32
            f.write(b"\0" * pad)
            offset += pad
            f.write(data)
            entry = {"name": tname, "shape": list(arr.shape), "dtype": "i8" if kind == "ternary" else "f32",
                     "offset": offset, "nbytes": len(data), "kind": kind}
            if scale is not None:
                entry["scale"] = scale
            tensors.append(entry)
            offset += len(data)
    c = m.cfg
    meta = {
        "format": "bitnet-trained", "version": 1, "arch": "bitnet-b1.58", "name": name,
        "hparams": {k: c[k] for k in ("n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv",
                                      "n_ff", "n_ctx", "rope_base", "rms_eps")},
        "tokenizer": {"model": "gpt2", "pre": "gpt-2", "tokens": tok.tokens,
                      "token_types": tok.token_types(), "merges": tok.merges,
                      "bos": tok.bos, "eos": tok.eos, "add_bos": True},
        "tensors": tensors,
        "provenance": provenance,
    }
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)


def load_export(prefix):
    """(BitNetModel with frozen ternary weights, Tokenizer, meta) from export files."""
    with open(prefix + ".json", encoding="utf-8") as f:
        meta = json.load(f)
    raw = np.fromfile(prefix + ".bin", dtype=np.uint8)
    cfg = dict(meta["hparams"])
    m = bitnet_model.BitNetModel(cfg)
    arrays = {}
    for t in meta["tensors"]:
        dtype = np.int8 if t["dtype"] == "i8" else np.dtype("<f4")
        a = raw[t["offset"]:t["offset"] + t["nbytes"]].view(dtype).reshape(t["shape"])
        arrays[t["name"]] = (torch.from_numpy(a.astype(np.float32)), t.get("scale"))
    with torch.no_grad():
        m.token_embd.weight.copy_(arrays["token_embd.weight"][0])
        m.output_norm.weight.copy_(arrays["output_norm.weight"][0])
        for i, blk in enumerate(m.blocks):
            p = f"blk.{i}."
            for norm in NORM_NAMES:
                getattr(blk, norm).weight.copy_(arrays[p + norm + ".weight"][0])
            for attr, gname in LINEAR_NAMES.items():
                codes, scale = arrays[p + gname + ".weight"]
                setattr(blk, attr, bitnet_model.FrozenBitLinear(codes, scale))
    m.eval()
    tk = meta["tokenizer"]
    return m, bpe.Tokenizer(tk["tokens"], tk["merges"]), meta


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.json and PREFIX.bin")
    p.add_argument("--name", default="austen-bitnet-b1.58")
    args = p.parse_args()
    m, state = load_checkpoint(args.checkpoint)
    tok = bpe.Tokenizer.load(state["tokenizer"])
    a = state["args"]
    provenance = {
        "data": "Jane Austen's six novels from Debian's r-cran-janeaustenr 1.0.0 "
                "(package MIT, texts public domain)",
        "heldout_fraction": a["heldout_fraction"], "seed": a["seed"], "steps": state["step"],
        "batch": a["batch"], "ctx": a["ctx"], "lr": a["lr"], "warmup": a["warmup"],
        "weight_decay": a["weight_decay"], "min_lr_ratio": a["min_lr_ratio"],
        "trainer": "tools/train/train.py",
    }
    write_export(m, tok, args.name, args.out, provenance)
    print(f"wrote {args.out}.json and {args.out}.bin")


if __name__ == "__main__":
    main()
