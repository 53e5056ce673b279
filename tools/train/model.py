"""A BitNet b1.58 transformer (arch `bitnet-b1.58`) with quantization-aware
training, and an evaluation mode that computes what the C++ engine computes.

Per layer (the graph of engine/stage_engine.cc):
    h = rmsnorm(x) * attn_norm
    q, k, v = BitLinear(h); NEOX RoPE on q, k
    a = causal GQA attention, scale 1/sqrt(head_dim)
    x += BitLinear_o(rmsnorm(a) * attn_sub_norm)
    h = rmsnorm(x) * ffn_norm
    x += BitLinear_down(rmsnorm(relu(BitLinear_gate h)^2 * BitLinear_up h) * ffn_sub_norm)
logits = rmsnorm(x) * output_norm @ token_embd^T      (tied embeddings)

BitLinear (BitNet b1.58): weights absmean-ternary, one scale per tensor
(scale = mean|W| rounded to fp16, so every ternary GGUF type stores it exactly,
Wq = clamp(round(W / scale), -1, 1) * scale); activations per-token absmax
int8 (s = 127 / max|x|, xq = clamp(round(x * s), -128, 127) / s). Gradients
pass both roundings straight through (STE).

`exact=True` (evaluation only) also reproduces the engine's default float
details: fp16 token embedding (the GGUF stores it as f16), fp16 KV cache with
the query and the softmax weights rounded to fp16 (kernels/ops.cc), and
fp16-rounded activations into the f16 lm_head.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def fp16_round(x):
    return x.to(torch.float16).to(torch.float32)


def weight_scale(w):
    """Per-tensor absmean scale, rounded to an fp16 value."""
    return fp16_round(w.abs().mean().clamp(min=1e-5))


def ternary_codes(w):
    """(codes in {-1,0,1} as float, scale) of a latent weight."""
    s = weight_scale(w)
    return torch.clamp(torch.round(w / s), -1, 1), s


def quantize_acts(x):
    """Per-token absmax int8 fake quantization (values, not codes)."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return torch.round(x * s).clamp_(-128, 127).div_(s)


class _ActQuantSTE(torch.autograd.Function):
    """quantize_acts forward, identity backward (fewer tensors than x + (q - x).detach())."""

    @staticmethod
    def forward(ctx, x):
        return quantize_acts(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def act_quant(x):
    """Per-token int8 fake quantization with a straight-through gradient."""
    return _ActQuantSTE.apply(x)


class BitLinear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.exact = False  # set by BitNetModel.forward

    def forward(self, x, xq=None):
        """`xq`: act_quant(x), when several BitLinears share the input."""
        codes, s = ternary_codes(self.weight)
        if self.exact:
            return exact_bitlinear(x, codes, s)
        w = self.weight + (codes * s - self.weight).detach()
        return F.linear(act_quant(x) if xq is None else xq, w)


def exact_bitlinear(x, codes, w_scale):
    """The engine's integer product: int8 activations times ternary codes,
    summed exactly, then y = acc * (1/s) * scale in f32."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    q = torch.round(x * s).clamp_(-128, 127)
    acc = (q.double() @ codes.double().t()).float()
    return acc * (1.0 / s) * w_scale


class FrozenBitLinear(nn.Module):
    """A BitLinear whose ternary codes and scale are given (an exported model)."""

    def __init__(self, codes, scale):
        super().__init__()
        self.register_buffer("codes", codes.float())
        self.scale = torch.tensor(float(scale), dtype=torch.float32)
        self.exact = False

    def forward(self, x, xq=None):
        if self.exact:
            return exact_bitlinear(x, self.codes, self.scale)
        return F.linear(quantize_acts(x) if xq is None else xq, self.codes * self.scale)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        scale = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (x * scale) * self.weight


def rope_tables(n_ctx, n_rot, base):
    """cos, sin of shape (n_ctx, n_rot/2), as kernels/ops.cc RopeAngles."""
    theta_scale = base ** (-2.0 / n_rot)
    freqs = torch.tensor([theta_scale ** i for i in range(n_rot // 2)], dtype=torch.float64)
    t = torch.arange(n_ctx, dtype=torch.float64)[:, None] * freqs[None, :]
    return torch.cos(t).float(), torch.sin(t).float()


def apply_rope_neox(x, cos, sin):
    """x: (B, H, T, D); rotates the pairs (i, i + D/2)."""
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, hd = cfg["n_embd"], cfg["head_dim"]
        self.n_head, self.n_head_kv, self.head_dim = cfg["n_head"], cfg["n_head_kv"], hd
        eps = cfg["rms_eps"]
        self.attn_norm = RMSNorm(d, eps)
        self.wq = BitLinear(d, self.n_head * hd)
        self.wk = BitLinear(d, self.n_head_kv * hd)
        self.wv = BitLinear(d, self.n_head_kv * hd)
        self.attn_sub_norm = RMSNorm(self.n_head * hd, eps)
        self.wo = BitLinear(self.n_head * hd, d)
        self.ffn_norm = RMSNorm(d, eps)
        self.w_gate = BitLinear(d, cfg["n_ff"])
        self.w_up = BitLinear(d, cfg["n_ff"])
        self.ffn_sub_norm = RMSNorm(cfg["n_ff"], eps)
        self.w_down = BitLinear(cfg["n_ff"], d)

    def attention(self, h, cos, sin, mask, exact):
        B, T, _ = h.shape
        hq = None if exact else act_quant(h)  # q, k and v share one quantized input
        q = self.wq(h, hq).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.wk(h, hq).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        v = self.wv(h, hq).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        q = apply_rope_neox(q, cos, sin)
        k = apply_rope_neox(k, cos, sin)
        if exact:
            q, k, v = fp16_round(q), fp16_round(k), fp16_round(v)
        group = self.n_head // self.n_head_kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        att = att.masked_fill(mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        if exact:
            att = fp16_round(att)
        a = (att @ v).transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return self.wo(self.attn_sub_norm(a))

    def forward(self, x, cos, sin, mask, exact=False):
        x = x + self.attention(self.attn_norm(x), cos, sin, mask, exact)
        h = self.ffn_norm(x)
        hq = None if exact else act_quant(h)
        g = F.relu(self.w_gate(h, hq))
        return x + self.w_down(self.ffn_sub_norm(g * g * self.w_up(h, hq)))


class BitNetModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.cfg.setdefault("head_dim", cfg["n_embd"] // cfg["n_head"])
        c = self.cfg
        self.token_embd = nn.Embedding(c["n_vocab"], c["n_embd"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.output_norm = RMSNorm(c["n_embd"], c["rms_eps"])
        cos, sin = rope_tables(c["n_ctx"], c["head_dim"], c["rope_base"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def init_weights(self, generator):
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                with torch.no_grad():
                    p.normal_(0.0, std, generator=generator)

    def linears(self):
        for blk in self.blocks:
            for name in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"):
                yield blk, name, getattr(blk, name)

    def forward(self, ids, exact=False):
        B, T = ids.shape
        for _, _, lin in self.linears():
            lin.exact = exact
        emb = self.token_embd.weight
        if exact:
            emb = fp16_round(emb)
        x = F.embedding(ids, emb)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=ids.device), diagonal=1)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask, exact)
        x = self.output_norm(x)
        if exact:
            x = fp16_round(x)
        return F.linear(x, emb)

    def param_groups(self, weight_decay):
        """Weight decay on the matrices only (not on norms)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if name.endswith("norm.weight") else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]
