#!/usr/bin/env python3
"""Prints the tokenizer bench's last run as a markdown table (BENCHMARKS.md).

Usage: python3 scripts/bench_table.py [TARGET_DIR]

Reads criterion's `target/criterion/tokenize_<domain>/<encoder>/new/` files
(median time per pass over the corpus, and its byte count) and the token
counts the bench writes to `target/criterion/tokenize-tokens.json`; prints
MB/s (decimal) and Mtokens/s per encoder and corpus, and each encoder's
throughput relative to `ours-warm`.
"""
import json, os, sys

target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target")
root = os.path.join(target, "criterion")
tokens = json.load(open(os.path.join(root, "tokenize-tokens.json")))
domains = ["code", "math", "prose", "mixed"]
encoders = ["ours-warm", "ours-cold", "tokenizers-1.0rc3", "splintr-0.22", "bpe-crate", "tiktoken-rs", "tokenizers-0.23"]


def median_s(domain, enc):
    path = os.path.join(root, f"tokenize_{domain}", enc, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["median"]["point_estimate"] / 1e9


print("| encoder | " + " | ".join(f"{d} MB/s (Mtok/s)" for d in domains) + " | mixed vs ours-warm |")
print("|---|" + "---|" * (len(domains) + 1))
ours_mixed = median_s("mixed", "ours-warm")
for enc in encoders:
    cells = []
    for d in domains:
        t = median_s(d, enc)
        if t is None:
            cells.append("–")
            continue
        c = tokens[d]
        cells.append(f"{c['bytes'] / t / 1e6:.1f} ({c['tokens'] / t / 1e6:.1f})")
    t = median_s("mixed", enc)
    rel = f"{ours_mixed / t:.2f}×" if t and ours_mixed else "–"
    print(f"| {enc} | " + " | ".join(cells) + f" | {rel} |")
