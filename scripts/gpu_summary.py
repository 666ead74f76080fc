#!/usr/bin/env python3
"""Summarises a GPU check (scripts/gpu-check.sh): our tokens/s against
PyTorch's on the same card, MoE/dense step time, MFU, and the 200-step run.

    python3 scripts/gpu_summary.py RESULTS_DIR --preset gpt2 --block 512

Reads RESULTS_DIR/throughput.tsv (rows: impl, run, precision, micro_batch,
tok_per_s, mem_bytes; impl is `ours` or `torch`; mem_bytes is, for ours,
the most device memory in use at a train event, for PyTorch its
allocator's peak), RESULTS_DIR/card.txt
(nvidia-smi's CSV; the card's name picks its dense bf16 peak),
RESULTS_DIR/matmul.txt (`moe gpu matmul`, optional) and
RESULTS_DIR/moe-200/metrics.jsonl (optional). Prints Markdown.

MFU counts 6·N + 6·L·C·T FLOPs per trained token (issue 16): N the
parameters a token's matmuls use (blocks with one expert per MoE layer and
the router, plus the tied LM head; not the position table), L layers, C the
width, T the sequence length (causal attention: half of the 12·L·C·T of a
full score matrix). It is divided by the card's dense bf16 peak from the
vendor's table below, and, where matmul.txt has it, by the bf16 matmul
rate measured on the card.
"""

import argparse
import csv
import json
import math
import os

PRESETS = {
    # name: (n_layer, d_model, vocab, moe layers (the last four), experts)
    "gpt2": (12, 768, 50257, 4, 8),
    "tiny": (4, 128, 50257, 4, 8),
}
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data
# sheets; the longest name that is a substring of nvidia-smi's wins.
PEAK_BF16_TFLOPS = {
    "H200": 989.4,  # SXM
    "H200 NVL": 835.0,
    "H100 80GB HBM3": 989.4,  # SXM
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.1,
    "RTX 4090": 165.2,  # with f32 accumulation
}


def active_matmul_params(preset, moe):
    n_layer, d, vocab, n_moe, n_experts = PRESETS[preset]
    attn = d * 3 * d + 3 * d + d * d + d
    mlp = d * 4 * d + 4 * d + 4 * d * d + d
    router = d * n_experts if moe else 0
    blocks = n_layer * (attn + mlp) + (n_moe * router if moe else 0)
    return blocks + vocab * d  # + the tied LM head


def flops_per_token(preset, moe, block):
    """FLOPs per token as tok_per_s counts them: a sequence of `block`
    tokens read trains `block - 1` positions."""
    n_layer, d = PRESETS[preset][0], PRESETS[preset][1]
    seq = block - 1
    per_position = 6 * active_matmul_params(preset, moe) + 6 * n_layer * d * seq
    return per_position * seq / block


def card_name(results):
    try:
        with open(os.path.join(results, "card.txt")) as f:
            lines = f.read().splitlines()
        return lines[1].split(",")[0].strip()
    except (OSError, IndexError):
        return None


def card_peak(name):
    if not name:
        return None
    hits = [k for k in PEAK_BF16_TFLOPS if k in name]
    return PEAK_BF16_TFLOPS[max(hits, key=len)] if hits else None


def measured_bf16(results):
    try:
        with open(os.path.join(results, "matmul.txt")) as f:
            for line in f:
                if " bf16: " in line:
                    return float(line.split(" bf16: ")[1].split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def throughput_table(results, preset, block):
    rows = list(csv.DictReader(open(os.path.join(results, "throughput.tsv")), delimiter="\t"))
    by = {(r["impl"], r["run"], r["precision"], int(r["micro_batch"])): r for r in rows}
    name = card_name(results)
    peak = card_peak(name)
    measured = measured_bf16(results)
    print(f"card: {name or 'unknown'}; dense bf16 peak "
          f"{f'{peak:.0f} TFLOP/s (data sheet)' if peak else 'not in the table: MFU not computed'}"
          + (f"; measured bf16 matmul {measured:.0f} TFLOP/s" if measured else ""))
    print("ours tok/s: the last train event (the mean over its log interval, after the"
          " first events' kernel compilation); PyTorch: the median over its timed steps.")
    print()
    print("| run | precision | micro-batch | ours tok/s | PyTorch tok/s | ours / PyTorch | ours MFU | PyTorch MFU | ours GiB in use (most at a train event) | PyTorch peak GiB (allocator) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r, p, mb) for (_, r, p, mb) in by}, key=lambda k: (k[0], k[1], -k[2]))
    for run, prec, mb in keys:
        ours, torch = by.get(("ours", run, prec, mb)), by.get(("torch", run, prec, mb))
        fl = flops_per_token(preset, run == "moe", block)
        cell = lambda r: f"{float(r['tok_per_s']):,.0f}" if r else "–"
        mfu = lambda r: f"{100 * fl * float(r['tok_per_s']) / (peak * 1e12):.1f}%" if (r and peak) else "–"
        gib = lambda r: f"{int(r['mem_bytes']) / 2**30:.2f}" if (r and int(r["mem_bytes"]) > 0) else "–"
        ratio = (f"{float(ours['tok_per_s']) / float(torch['tok_per_s']):.2f}"
                 if ours and torch and float(torch["tok_per_s"]) > 0 else "–")
        print(f"| {run} | {prec} | {mb} | {cell(ours)} | {cell(torch)} | {ratio} | {mfu(ours)} | {mfu(torch)} | {gib(ours)} | {gib(torch)} |")
    if measured:
        print()
        print(f"MFU against the bf16 matmul rate measured on this card ({measured:.0f} TFLOP/s):")
        for run, prec, mb in keys:
            fl = flops_per_token(preset, run == "moe", block)
            cells = []
            for impl in ("ours", "torch"):
                r = by.get((impl, run, prec, mb))
                if r:
                    cells.append(f"{impl} {100 * fl * float(r['tok_per_s']) / (measured * 1e12):.1f}%")
            print(f"- {run} {prec} micro-batch {mb}: " + ", ".join(cells))
    print()
    print("MoE/dense step time at the same micro-batch and precision (original study: 1.81; goal ≤ 1.15):")
    for impl in ("ours", "torch"):
        for (i, run, prec, mb), r in sorted(by.items()):
            if i != impl or run != "moe":
                continue
            dense = by.get((impl, "dense", prec, mb))
            if dense:
                print(f"- {impl} {prec} micro-batch {mb}: "
                      f"{float(dense['tok_per_s']) / float(r['tok_per_s']):.2f}")
    print()


def long_run(results):
    path = os.path.join(results, "moe-200", "metrics.jsonl")
    if not os.path.exists(path):
        print("moe-200: no metrics.jsonl")
        return
    events = [json.loads(line) for line in open(path) if line.strip()]
    train = [e for e in events if e.get("event") == "train"]
    if not train:
        print("moe-200: no train event")
        return
    print("moe-200 (every train event):")
    print()
    print("| step | loss | lm | lb | max expert share (per MoE layer) | device MiB |")
    print("|---|---|---|---|---|---|")
    for e in train:
        shares = " ".join(f"{r['max_share']:.2f}" for r in e.get("routing", []))
        mem = e.get("device_bytes")
        lb = e.get("lb_loss")
        print(f"| {e['step']} | {e['loss']:.4f} | {e['lm_loss']:.4f} | "
              f"{'–' if lb is None else f'{lb:.4f}'} | {shares} | "
              f"{'–' if mem is None else f'{mem / 2**20:.0f}'} |")
    losses = [e["loss"] for e in train]
    finite = all(math.isfinite(x) for x in losses)
    mems = [e["device_bytes"] for e in train if e.get("device_bytes") is not None]
    after = mems[len(mems) // 4:]  # after warm-up
    worst = max((r["max_share"] for e in train[len(train) // 2:] for r in e.get("routing", [])), default=None)
    print()
    print(f"- loss {losses[0]:.4f} → {losses[-1]:.4f}; all finite: {finite}")
    if after:
        print(f"- device memory after warm-up: {min(after) / 2**20:.0f}–{max(after) / 2**20:.0f} MiB "
              f"(growth {(max(after) - min(after)) / 2**20:.0f} MiB over {len(after)} events)")
    if worst is not None:
        print(f"- largest expert share over the second half: {worst:.2f} (collapse detector's threshold: 0.6)")
    stops = [e for e in events if e.get("event") == "stop"]
    for s in stops:
        print(f"- stopped: {s.get('message')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--preset", choices=list(PRESETS), default="gpt2")
    ap.add_argument("--block", type=int, default=512)
    args = ap.parse_args()
    throughput_table(args.results, args.preset, args.block)
    long_run(args.results)


if __name__ == "__main__":
    main()
