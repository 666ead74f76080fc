#!/usr/bin/env python3
"""Writes a ~10 MB-per-domain local corpus for measuring `moe data prepare`
throughput (BENCHMARKS.md). Not committed output; deterministic.

Usage: python3 scripts/make_bench_corpus.py OUT_DIR [MB_PER_DOMAIN]

- code:  every CPython standard-library module, chunked as in make_corpora.py
- math:  the seeded word-problem generator of make_corpora.py
- prose: The Devil's Dictionary entries, repeated with a copy number so that
         no two documents are identical (dedup keeps them)
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

def code():
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
                for c in mc.chunks(src):
                    yield {"text": c}

def prose(devil):
    entries = [r["text"] for r in mc.prose_rows(devil)]
    copy = 0
    while True:
        copy += 1
        for e in entries:
            yield {"text": f"{e}\n\n(copy {copy})"}

write("code.jsonl", code())
write("math.jsonl", mc.math_rows(10**6))
write("prose.jsonl", prose(sys.argv[3] if len(sys.argv) > 3 else "/usr/share/dictd/devil.dict.dz"))
