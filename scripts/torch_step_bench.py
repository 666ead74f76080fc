#!/usr/bin/env python3
"""PyTorch yardstick for `cargo bench -p moe-model --bench step`.

Builds the same models as the step bench — GPT-2 blocks (pre-LayerNorm,
causal attention scaled by 1/sqrt(head_dim), gelu_new MLP, LM head tied to
the token embedding), dense and MoE (every block 8 experts, top-1, softmax
router, straight-through gate, load-balancing and z losses) — on the same
shapes, and times one forward + backward of LM + 0.01·LB + 0.001·z, the
step bench's loss. The MoE layer dispatches with a Python loop over the
experts, as the original study did.

Groups and ids are the bench's: `tiny_fwd_bwd` (GPT-2 vocabulary 50257,
width 128, 4 blocks, 4 heads) and `d512_fwd_bwd` (vocabulary 96, width 512,
4 blocks, 8 heads), each `dense` and `moe_4x8_top1`; batch 2 × 128 tokens.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch
    /tmp/torchvenv/bin/python scripts/torch_step_bench.py --threads 2

Prints one line per (group, id): median, min and max wall milliseconds over
`--iters` timed steps after `--warmup` untimed ones, and the process CPU time
per step (all threads; it moves much less than wall time when other jobs
share the machine). Same format as `cargo run --release -p moe-model
--example step_time`.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

BATCH, SEQ = 2, 128
GROUPS = {
    # name: (vocab, d_model, n_layer, n_head, n_positions)
    "tiny_fwd_bwd": (50257, 128, 4, 4, 256),
    "d512_fwd_bwd": (96, 512, 4, 8, 256),
}
N_EXPERTS, LB_COEF, Z_COEF = 8, 0.01, 0.001


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Moe(nn.Module):
    """Top-1 MoE with a per-expert loop (the original study's dispatch)."""

    def __init__(self, d, n_experts):
        super().__init__()
        self.router = nn.Linear(d, n_experts, bias=False)
        self.experts = nn.ModuleList(Mlp(d) for _ in range(n_experts))

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x.float())
        probs = logits.softmax(-1)
        p_top, idx = probs.max(-1)
        gate = 1.0 + (p_top - p_top.detach())  # straight-through: value 1
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows = (idx == e).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            y.index_add_(0, rows, expert(x[rows]) * gate[rows, None])
        n = probs.shape[-1]
        f = torch.bincount(idx, minlength=n).float() / idx.numel()
        lb = n * (f * probs.mean(0)).sum()
        z = torch.logsumexp(logits, -1).pow(2).mean()
        return y.reshape(shape), lb, z


class Block(nn.Module):
    def __init__(self, d, n_head, moe):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Moe(d, N_EXPERTS) if moe else Mlp(d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        heads = lambda h: h.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, d))
        h = self.mlp(self.ln_2(x))
        if isinstance(h, tuple):
            h, lb, z = h
            return x + h, (lb, z)
        return x + h, None


class Gpt2(nn.Module):
    def __init__(self, vocab, d, n_layer, n_head, n_positions, moe):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(n_positions, d)
        self.h = nn.ModuleList(Block(d, n_head, moe) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, targets):
        pos = torch.arange(tokens.shape[1])
        x = self.wte(tokens) + self.wpe(pos)[None]
        aux = []
        for block in self.h:
            x, a = block(x)
            if a is not None:
                aux.append(a)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if aux:
            loss = loss + LB_COEF * torch.stack([a[0] for a in aux]).mean()
            loss = loss + Z_COEF * torch.stack([a[1] for a in aux]).mean()
        return loss


def tokens(vocab):
    # The bench's ids: (i * 7919) % vocab over batch × (seq + 1).
    ids = torch.tensor([(i * 7919) % vocab for i in range(BATCH * (SEQ + 1))]).view(BATCH, SEQ + 1)
    return ids[:, :SEQ].contiguous(), ids[:, 1:].contiguous()


def time_step(model, inp, tgt, warmup, iters):
    def step():
        model.zero_grad(set_to_none=True)
        model(inp, tgt).backward()

    for _ in range(warmup):
        step()
    times = []
    cpu0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, (time.process_time() - cpu0) * 1e3 / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--group", choices=list(GROUPS), action="append")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    for group in args.group or list(GROUPS):
        vocab, d, n_layer, n_head, n_pos = GROUPS[group]
        inp, tgt = tokens(vocab)
        for name, moe in (("dense", False), ("moe_4x8_top1", True)):
            model = Gpt2(vocab, d, n_layer, n_head, n_pos, moe)
            times, cpu = time_step(model, inp, tgt, args.warmup, args.iters)
            med = statistics.median(times)
            print(f"{group}/{name}: wall median {med:.1f} ms (min {min(times):.1f}, max {max(times):.1f}), "
                  f"CPU {cpu:.1f} ms per step, {args.iters} steps")


if __name__ == "__main__":
    main()
