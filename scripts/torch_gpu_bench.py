#!/usr/bin/env python3
"""PyTorch yardstick for the GPU check (issue 16): training tokens/s of the
study's shapes on the same card, in the same call as `moe train`.

Builds, without any download (random init from a `GPT2Config`):

- dense: HF `GPT2LMHeadModel` as it is;
- moe: the same with the MLP of blocks 8-11 (the last four) replaced by the
  original study's MoE layer: 8 copies of HF's `GPT2MLP`, a bias-free
  linear router, top-1 with the straight-through gate (value 1, gradient
  to the router), a Python loop over the experts, Switch load-balancing
  and z-losses added as 0.01·LB + 0.001·z.

Each step is one micro-batch: forward, next-token cross-entropy of
`block - 1` positions (the same tokens per sequence as `moe train` at that
block size), backward, AdamW step, as `moe train` does. `--dtype bf16`
runs forward and loss under `torch.autocast(bfloat16)` with f32 master
weights, PyTorch's usual mixed precision; `f32` is eager f32 (TF32 off).

Writes one TSV row per (model, dtype, micro-batch) that ran: median
tokens/s over the timed steps, counted as `moe train` counts them (`block`
tokens per sequence read, `block - 1` of them predicted), and peak device
memory. Micro-batches are tried
largest first; the first that fits is "largest", and 2 (the original's)
always runs.

    python3 scripts/torch_gpu_bench.py --out torch.tsv                 # on the GPU machine
    python3 scripts/torch_gpu_bench.py --device cpu --preset tiny --block 64 \\
        --micro-batches 4,2 --steps 2 --warmup 1 --out /tmp/t.tsv     # a dry run anywhere
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP

PRESETS = {
    # name: (n_layer, n_head, d_model, vocab, n_positions), as `moe` names them
    "gpt2": (12, 12, 768, 50257, 1024),
    "tiny": (4, 4, 128, 50257, 256),
}
N_EXPERTS, LB_COEF, Z_COEF = 8, 0.01, 0.001


class OriginalMoe(nn.Module):
    """The original study's MoE layer: top-1, straight-through gate, expert loop."""

    def __init__(self, config, n_experts):
        super().__init__()
        d = config.n_embd
        self.router = nn.Linear(d, n_experts, bias=False)
        self.experts = nn.ModuleList(GPT2MLP(4 * d, config) for _ in range(n_experts))
        self.aux = None

    def forward(self, hidden):
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])
        logits = self.router(x).float()
        probs = logits.softmax(-1)
        p_top, idx = probs.max(-1)
        gate = 1.0 + (p_top - p_top.detach())  # value 1, gradient to the router
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows = (idx == e).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            out = expert(x[rows]) * gate[rows, None].to(x.dtype)
            y.index_add_(0, rows, out.to(y.dtype))
        n = probs.shape[-1]
        f = torch.bincount(idx, minlength=n).float() / idx.numel()
        lb = n * (f * probs.mean(0)).sum()
        z = torch.logsumexp(logits, -1).pow(2).mean()
        self.aux = (lb, z)
        return y.reshape(shape)


def build(preset, moe, device):
    n_layer, n_head, d, vocab, n_pos = PRESETS[preset]
    config = GPT2Config(
        vocab_size=vocab, n_positions=n_pos, n_embd=d, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    moe_layers = list(range(n_layer - 4, n_layer)) if moe else []
    for i in moe_layers:
        model.transformer.h[i].mlp = OriginalMoe(config, N_EXPERTS)
    return model.to(device), moe_layers


def batch(vocab, micro_batch, block, device):
    ids = torch.tensor([(i * 7919 + 13) % vocab for i in range(micro_batch * block)], device=device)
    ids = ids.view(micro_batch, block)
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def train_step(model, moe_layers, opt, inp, tgt, dtype):
    device_type = inp.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        logits = model(input_ids=inp).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        if moe_layers:
            aux = [model.transformer.h[i].mlp.aux for i in moe_layers]
            loss = loss + LB_COEF * torch.stack([a[0] for a in aux]).mean()
            loss = loss + Z_COEF * torch.stack([a[1] for a in aux]).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args, kind, dtype, micro_batch, device):
    """Median tokens/s over the timed steps and peak memory, or None when it does not fit."""
    model, moe_layers = build(args.preset, kind == "moe", device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    inp, tgt = batch(PRESETS[args.preset][3], micro_batch, args.block, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for i in range(args.warmup + args.steps):
            sync(device)
            t0 = time.perf_counter()
            loss = train_step(model, moe_layers, opt, inp, tgt, dtype)
            sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            print(f"{kind} {dtype} mb {micro_batch}: loss {loss.item()} not finite", file=sys.stderr)
            return None
    except torch.OutOfMemoryError:
        return None
    finally:
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    tokens = micro_batch * args.block  # counted as `moe train` counts: whole blocks read
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return tokens / statistics.median(times), peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", choices=list(PRESETS), default="gpt2")
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--micro-batches", default="32,16,8,4",
                    help="tried largest first; 2 always runs as well")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {card}, preset {args.preset}, block {args.block}")
    sizes = sorted({int(s) for s in args.micro_batches.split(",")}, reverse=True)
    with open(args.out, "w") as out:
        out.write("impl\trun\tprecision\tmicro_batch\ttok_per_s\tmem_bytes\n")
        for kind in ("dense", "moe"):
            for dtype in args.dtypes.split(","):
                done = set()
                for mb in sizes:  # the largest that fits
                    got = measure(args, kind, dtype, mb, device)
                    if got is not None:
                        done.add(mb)
                        out.write(f"torch\t{kind}\t{dtype}\t{mb}\t{got[0]:.1f}\t{got[1]}\n")
                        print(f"{kind} {dtype} micro-batch {mb}: {got[0]:.0f} tok/s, peak {got[1] / 2**30:.2f} GiB")
                        break
                    print(f"{kind} {dtype} micro-batch {mb}: does not fit")
                if 2 not in done:
                    got = measure(args, kind, dtype, 2, device)
                    if got is not None:
                        out.write(f"torch\t{kind}\t{dtype}\t2\t{got[0]:.1f}\t{got[1]}\n")
                        print(f"{kind} {dtype} micro-batch 2: {got[0]:.0f} tok/s, peak {got[1] / 2**30:.2f} GiB")
                out.flush()


if __name__ == "__main__":
    main()
