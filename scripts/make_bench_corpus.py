#!/usr/bin/env python3
"""Writes a ~10 MB-per-domain local corpus for measuring `moe data prepare`
throughput (BENCHMARKS.md), and `bench.toml` (block 512, val 0.05, balance
tokens; the demo's math template). Not committed output; deterministic.

Usage: python3 scripts/make_bench_corpus.py OUT_DIR [MB_PER_DOMAIN] [DEVIL_DICT]

- code:  every CPython standard-library module, chunked as in make_corpora.py;
         past the first pass (~6 MB) the chunks repeat with a `# copy N` line
         so that no two documents are identical (dedup keeps them)
- math:  the seeded word-problem generator of make_corpora.py
- prose: The Devil's Dictionary entries, repeated with a copy number; read
         from DEVIL_DICT (default /usr/share/dictd/devil.dict.dz, Debian's
         dict-devil) or, where that is missing, from the embedded
         assets/corpora/prose/devils-dictionary.jsonl
"""
import json, os, sys, sysconfig
sys.path.insert(0, os.path.dirname(__file__))
import make_corpora as mc

out, mb = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
limit = int(mb * 1e6)
os.makedirs(out, exist_ok=True)

def write(name, rows):
    size = 0
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        for r in rows:
            line = json.dumps(r, ensure_ascii=False) + "\n"
            f.write(line); size += len(line.encode())
            if size >= limit:
                break

def stdlib_chunks():
    lib = sysconfig.get_paths()["stdlib"]
    for dirpath, dirs, files in sorted(os.walk(lib)):
        dirs.sort()
        if "site-packages" in dirpath or "test" in dirpath:
            continue
        for f in sorted(files):
            if f.endswith(".py"):
                try:
                    src = open(os.path.join(dirpath, f), encoding="utf-8").read()
                except (UnicodeDecodeError, OSError):
                    continue
                yield from mc.chunks(src)

def code():
    copy = 0
    while True:
        copy += 1
        for c in stdlib_chunks():
            yield {"text": c if copy == 1 else f"{c}\n# copy {copy}\n"}

def prose_entries(devil):
    if os.path.exists(devil):
        return [r["text"] for r in mc.prose_rows(devil)]
    here = os.path.join(os.path.dirname(__file__), "..", "assets", "corpora", "prose", "devils-dictionary.jsonl")
    return [json.loads(line)["text"] for line in open(here, encoding="utf-8")]

def prose(devil):
    entries = prose_entries(devil)
    copy = 0
    while True:
        copy += 1
        for e in entries:
            yield {"text": f"{e}\n\n(copy {copy})"}

write("code.jsonl", code())
write("math.jsonl", mc.math_rows(10**6))
write("prose.jsonl", prose(sys.argv[3] if len(sys.argv) > 3 else "/usr/share/dictd/devil.dict.dz"))

with open(os.path.join(out, "bench.toml"), "w") as f:
    f.write("""[pipeline]
block_size = 512
seed = 42
val_fraction = 0.05
balance = "tokens"

[[domains]]
name = "code"
[[domains.sources]]
kind = "local"
path = "code.jsonl"
format = "jsonl"

[[domains]]
name = "math"
[[domains.sources]]
kind = "local"
path = "math.jsonl"
format = "jsonl"
fields = ["question", "answer"]
template = "Problem: {question}\\n\\nSolution: {answer}"
strip_calc_annotations = true

[[domains]]
name = "prose"
[[domains.sources]]
kind = "local"
path = "prose.jsonl"
format = "jsonl"
""")
