#!/usr/bin/python3
"""Trains a small BitNet b1.58 model on Jane Austen's novels (CPU, PyTorch).

    /usr/bin/python3 tools/train/train.py --deb r-cran-janeaustenr_1.0.0-1_all.deb \
        --work /tmp/austen-run

The work directory receives the prepared data (train.txt, heldout.txt,
tokenizer.json, train_ids.npy), train.log, and checkpoint.pt (written every
--ckpt-every steps and at the end). Running the same command again resumes
from checkpoint.pt. Everything random (initialization, batch order) comes from
--seed; with the same seed, thread count and PyTorch build, a run is
reproducible. See docs/TRAINING.md.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
import model as bitnet_model  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("data")
    src.add_argument("--deb", help="r-cran-janeaustenr .deb (apt-get download r-cran-janeaustenr)")
    src.add_argument("--rdata", help="or: the installed package's data/ directory")
    src.add_argument("--heldout-fraction", type=float, default=0.01,
                     help="last fraction of each novel's paragraphs held out (default 0.01)")
    src.add_argument("--vocab-size", type=int, default=4096)
    arch = p.add_argument_group("model")
    arch.add_argument("--n-embd", type=int, default=256)
    arch.add_argument("--n-layer", type=int, default=4)
    arch.add_argument("--n-head", type=int, default=4)
    arch.add_argument("--n-head-kv", type=int, default=2)
    arch.add_argument("--n-ff", type=int, default=768)
    arch.add_argument("--ctx", type=int, default=256, help="training context (tokens)")
    arch.add_argument("--rope-base", type=float, default=10000.0)
    arch.add_argument("--rms-eps", type=float, default=1e-5)
    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, default=1600)
    opt.add_argument("--batch", type=int, default=8, help="sequences per step")
    opt.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    opt.add_argument("--min-lr-ratio", type=float, default=0.1)
    opt.add_argument("--warmup", type=int, default=100)
    opt.add_argument("--weight-decay", type=float, default=0.1,
                     help="for the first half of training, 0 after (BitNet b1.58's two-stage schedule)")
    opt.add_argument("--seed", type=int, default=1234)
    opt.add_argument("--threads", type=int, default=2)
    run = p.add_argument_group("run")
    run.add_argument("--work", required=True, help="work directory (data, log, checkpoint)")
    run.add_argument("--ckpt-every", type=int, default=100)
    run.add_argument("--eval-every", type=int, default=250)
    run.add_argument("--eval-tokens", type=int, default=8192, help="held-out tokens per evaluation")
    return p.parse_args(argv)


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def prepare_data(args, log):
    """Writes train.txt, heldout.txt, tokenizer.json, train_ids.npy, heldout_ids.npy
    into the work directory once; later runs reuse them."""
    w = args.work
    paths = {k: os.path.join(w, k) for k in
             ("train.txt", "heldout.txt", "tokenizer.json", "train_ids.npy", "heldout_ids.npy")}
    if all(os.path.exists(p) for p in paths.values()):
        tok = bpe.Tokenizer.load(paths["tokenizer.json"])
        return tok, np.load(paths["train_ids.npy"]), np.load(paths["heldout_ids.npy"])
    log("data: reading Jane Austen's novels")
    train_text, held_text = corpus.load_texts(args.deb, args.rdata, args.heldout_fraction)
    log(f"data: {len(train_text)} training characters, {len(held_text)} held out")
    tokens, merges = bpe.train(train_text, args.vocab_size, log=log)
    tok = bpe.Tokenizer(tokens, merges)
    train_ids = np.array(tok.encode(train_text), dtype=np.int32)
    held_ids = np.array(tok.encode(held_text), dtype=np.int32)
    log(f"data: {len(train_ids)} training tokens ({len(train_text) / len(train_ids):.2f} chars/token), "
        f"{len(held_ids)} held-out tokens")
    for name, text in (("train.txt", train_text), ("heldout.txt", held_text)):
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(text)
    tok.save(paths["tokenizer.json"])
    np.save(paths["train_ids.npy"], train_ids)
    np.save(paths["heldout_ids.npy"], held_ids)
    return tok, train_ids, held_ids


def model_config(args, n_vocab):
    return {
        "n_vocab": n_vocab, "n_embd": args.n_embd, "n_layer": args.n_layer,
        "n_head": args.n_head, "n_head_kv": args.n_head_kv, "n_ff": args.n_ff,
        "n_ctx": args.ctx, "rope_base": args.rope_base, "rms_eps": args.rms_eps,
    }


def batch(ids, bos, n, ctx, gen):
    """n windows: input [BOS, t_i .. t_{i+ctx-2}], target [t_i .. t_{i+ctx-1}].
    Every window starts with BOS, as in generation from a prompt and in the
    perplexity windows (whose first token is replaced by BOS)."""
    starts = torch.randint(0, len(ids) - ctx, (n,), generator=gen)
    rows = np.stack([ids[s:s + ctx] for s in starts.tolist()])
    tgt = torch.from_numpy(rows.astype(np.int64))
    inp = torch.cat([torch.full((n, 1), bos, dtype=torch.int64), tgt[:, :-1]], dim=1)
    return inp, tgt


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    lo = args.lr * args.min_lr_ratio
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def heldout_loss(m, held_ids, bos, ctx, max_tokens):
    """Mean next-token loss over consecutive BOS-led windows (QAT forward)."""
    m.eval()
    total, count = 0.0, 0
    step = ctx
    for s in range(0, min(len(held_ids), max_tokens) - ctx + 1, step):
        tgt = torch.from_numpy(held_ids[s:s + ctx].astype(np.int64))[None]
        inp = torch.cat([torch.tensor([[bos]]), tgt[:, :-1]], dim=1)
        logits = m(inp)
        total += F.cross_entropy(logits[0], tgt[0], reduction="sum").item()
        count += ctx
    m.train()
    return total / max(1, count)


def save_checkpoint(path, m, opt, step, gen, cfg, args, tok_path):
    tmp = path + ".tmp"
    torch.save({
        "model": m.state_dict(), "optimizer": opt.state_dict(), "step": step,
        "generator": gen.get_state(), "config": cfg, "args": vars(args),
        "tokenizer": tok_path,
    }, tmp)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    log = Log(os.path.join(args.work, "train.log"))
    torch.set_num_threads(args.threads)
    tok, train_ids, held_ids = prepare_data(args, log)
    cfg = model_config(args, tok.n_vocab)

    torch.manual_seed(args.seed)
    m = bitnet_model.BitNetModel(cfg)
    m.init_weights(torch.Generator().manual_seed(args.seed))
    opt = torch.optim.AdamW(m.param_groups(args.weight_decay), lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed + 1)
    step = 0
    ckpt = os.path.join(args.work, "checkpoint.pt")
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        if state["config"] != cfg:
            raise SystemExit(f"{ckpt} was trained with {state['config']}, not {cfg}; "
                             "use another --work directory")
        m.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step = state["step"]
        log(f"resumed from {ckpt} at step {step}")
    n_params = sum(p.numel() for p in m.parameters())
    log(f"model: {json.dumps(cfg)}, {n_params} parameters; "
        f"{args.steps} steps x {args.batch} x {args.ctx} tokens")

    m.train()
    t0, tokens_done = time.time(), 0
    while step < args.steps:
        lr = lr_at(step, args)
        wd = args.weight_decay if step < args.steps // 2 else 0.0
        for g in opt.param_groups:
            g["lr"] = lr
        opt.param_groups[0]["weight_decay"] = wd  # group 0: matrices; group 1: norms (no decay)
        inp, tgt = batch(train_ids, tok.bos, args.batch, args.ctx, gen)
        logits = m(inp)
        loss = F.cross_entropy(logits.reshape(-1, cfg["n_vocab"]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_done += inp.numel()
        if step % 10 == 0 or step == 1:
            rate = tokens_done / max(1e-9, time.time() - t0)
            log(f"step {step}/{args.steps} loss {loss.item():.4f} lr {lr:.2e} wd {wd:g} "
                f"{rate:.0f} tok/s")
        if step % args.eval_every == 0 or step == args.steps:
            hl = heldout_loss(m, held_ids, tok.bos, args.ctx, args.eval_tokens)
            log(f"eval step {step} held-out loss {hl:.4f} ppl {math.exp(hl):.2f}")
        if step % args.ckpt_every == 0 or step == args.steps:
            save_checkpoint(ckpt, m, opt, step, gen, cfg, args, os.path.join(args.work, "tokenizer.json"))
    log("done")


if __name__ == "__main__":
    main()
