#!/usr/bin/env python3
"""The PyTorch peer of `salr-bench train -shape bench-60M`.

Times full training steps (forward, backward, AdamW) of the same model and
method as salr-bench's train benchmark, written the way a PyTorch + PEFT user
would write it: a Llama decoder of the bench-60M shape (hidden 512, 8 layers,
8 heads, intermediate 1408, vocabulary 32000) with random weights, frozen
embedding, norms and head, and on all 7 projections of every layer

  lora: a frozen dense base plus LoRA (rank 16, alpha 32, dropout 0.05);
  salr: the base pruned to 50% by magnitude (dense tensors with zeros: PyTorch
        has no bitmap format) plus LoRA as above and a trainable rank-16
        residual adapter (scale 1) on the clean input.

AdamW on the adapters, global gradient norm clipped to 1.0, causal attention
without a fused kernel (PyTorch 1.13 has none on the CPU), batch 4 x 256 tokens
by default. `--precision bf16` runs the forward under torch.autocast("cpu",
dtype=torch.bfloat16), PyTorch's CPU autocast. Prints one JSON line with the
median and minimum ms/step.

Run it with OPENBLAS_CORETYPE set to the CPU's best OpenBLAS core (for
example Haswell on AVX2 CPUs, SkylakeX or Cooperlake on AVX-512 ones) and
torch's threads equal to the cores salr-bench uses:

  OPENBLAS_CORETYPE=Haswell python3 scripts/torch_train_step.py --method salr
"""

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN, INTER, LAYERS, HEADS, VOCAB = 512, 1408, 8, 8, 32000
HEAD_DIM = HIDDEN // HEADS


def magnitude_prune(w, ratio):
    """Zero the ratio smallest-magnitude entries of each row."""
    k = int(round(w.shape[1] * ratio))
    if k == 0:
        return w
    idx = w.abs().topk(k, dim=1, largest=False).indices
    return w.scatter(1, idx, 0.0)


class AdaptedLinear(nn.Module):
    """Frozen base weight plus LoRA and, for salr, a residual adapter."""

    def __init__(self, in_f, out_f, method, gen):
        super().__init__()
        w = torch.randn(out_f, in_f, generator=gen) / math.sqrt(in_f)
        if method == "salr":
            w = magnitude_prune(w, 0.5)
        self.weight = nn.Parameter(w, requires_grad=False)
        self.lora_A = nn.Linear(in_f, 16, bias=False)
        self.lora_B = nn.Linear(16, out_f, bias=False)
        nn.init.normal_(self.lora_B.weight, std=1e-3)
        self.dropout = nn.Dropout(0.05)
        self.lora_scale = 32 / 16
        self.svd = None
        if method == "salr":
            self.svd = nn.Sequential(nn.Linear(in_f, 16, bias=False), nn.Linear(16, out_f, bias=False))

    def forward(self, x):
        y = F.linear(x, self.weight)
        y = y + self.lora_B(self.lora_A(self.dropout(x))) * self.lora_scale
        if self.svd is not None:
            y = y + self.svd(x)
        return y


class RMSNorm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n), requires_grad=False)

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).type_as(x) * self.weight


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Layer(nn.Module):
    def __init__(self, method, gen):
        super().__init__()
        lin = lambda i, o: AdaptedLinear(i, o, method, gen)
        self.q, self.k, self.v, self.o = lin(HIDDEN, HIDDEN), lin(HIDDEN, HIDDEN), lin(HIDDEN, HIDDEN), lin(HIDDEN, HIDDEN)
        self.gate, self.up, self.down = lin(HIDDEN, INTER), lin(HIDDEN, INTER), lin(INTER, HIDDEN)
        self.norm1, self.norm2 = RMSNorm(HIDDEN), RMSNorm(HIDDEN)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.norm1(x)
        split = lambda y: y.view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM) + mask
        att = torch.softmax(att.float(), dim=-1).type_as(v)
        y = (att @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        x = x + self.o(y)
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, method, seed):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = nn.Parameter(torch.randn(VOCAB, HIDDEN, generator=gen) * 0.02, requires_grad=False)
        self.layers = nn.ModuleList(Layer(method, gen) for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        self.head = nn.Parameter(torch.randn(VOCAB, HIDDEN, generator=gen) / math.sqrt(HIDDEN), requires_grad=False)

    def forward(self, tokens, targets):
        t = tokens.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
        ang = torch.outer(torch.arange(t).float(), inv)
        cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = F.linear(self.norm(x), self.head)
        return F.cross_entropy(logits.float().view(-1, VOCAB), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=["lora", "salr"], default="salr")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Model(a.method, a.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    gen = torch.Generator().manual_seed(a.seed + 1)
    times = []
    for i in range(a.warmup + a.steps):
        data = torch.randint(0, VOCAB, (a.batch, a.seq + 1), generator=gen)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = model(data[:, :-1], data[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "method": a.method, "precision": a.precision,
        "shape": "bench-60M", "batch": a.batch, "seq": a.seq, "steps": a.steps, "threads": a.threads,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "trainable_params": sum(p.numel() for p in params),
        "median_ms_per_step": statistics.median(times), "min_ms_per_step": min(times),
    }))


if __name__ == "__main__":
    main()
