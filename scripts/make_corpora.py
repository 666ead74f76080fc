#!/usr/bin/env python3
"""Builds the small embedded demo corpora under assets/corpora/ (see PROVENANCE.md).

Deterministic: same inputs give byte-identical files. Not run by CI; the
outputs are committed. Usage: python3 scripts/make_corpora.py [--devil PATH]

- code:  CPython 3.11 standard-library modules (PSF licence), split at
         top-level `def`/`class` boundaries into chunks of at most 8000 chars.
- math:  seeded generator of arithmetic word problems with worked solutions,
         GSM8K-style (`<<a*b=c>>` calculator annotations, `#### answer`).
- prose: Ambrose Bierce, The Devil's Dictionary (public domain), from
         Debian's dict-devil package, one entry per document.
"""
import argparse, gzip, json, os, random, sys, sysconfig

ROOT = os.path.join(os.path.dirname(__file__), "..", "assets", "corpora")
CODE_MODULES = ["bisect", "calendar", "colorsys", "csv", "difflib", "fractions", "functools",
                "graphlib", "heapq", "ipaddress", "shlex", "statistics", "string", "textwrap",
                "tokenize", "uuid", "dataclasses", "argparse", "json/encoder", "json/decoder"]


def chunks(source, limit=8000):
    parts, cur = [], []
    for line in source.splitlines(keepends=True):
        if (line.startswith("def ") or line.startswith("class ")) and sum(map(len, cur)) > 0:
            parts.append("".join(cur)); cur = []
        cur.append(line)
    parts.append("".join(cur))
    out, acc = [], ""
    for p in parts:
        if acc and len(acc) + len(p) > limit:
            out.append(acc); acc = ""
        acc += p
    if acc:
        out.append(acc)
    return [c for c in out if len(c) <= limit]


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def code_rows():
    lib = sysconfig.get_paths()["stdlib"]
    for mod in CODE_MODULES:
        path = os.path.join(lib, mod + ".py")
        with open(path, encoding="utf-8") as f:
            for i, c in enumerate(chunks(f.read())):
                yield {"path": f"Lib/{mod}.py", "part": i, "text": c}


NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena"]
ITEMS = [("apples", "basket"), ("pencils", "box"), ("cookies", "tray"), ("stamps", "album"),
         ("marbles", "jar"), ("books", "shelf"), ("eggs", "carton"), ("cards", "deck")]


def math_rows(n, seed=20240520):
    rng = random.Random(seed)
    for i in range(n):
        name, other = rng.sample(NAMES, 2)
        item, holder = rng.choice(ITEMS)
        a, b, c = rng.randint(2, 12), rng.randint(3, 40), rng.randint(1, 30)
        price = rng.randint(2, 9)
        kind = i % 4
        if kind == 0:
            total = a * b
            q = f"{name} has {a} {holder}s with {b} {item} in each. {name} gives {c} {item} to {other}. How many {item} does {name} have left?"
            ans = f"{name} starts with {a} * {b} = <<{a}*{b}={total}>>{total} {item}.\nAfter giving {c} away, {name} has {total} - {c} = <<{total}-{c}={total - c}>>{total - c} {item}.\n#### {total - c}"
        elif kind == 1:
            cost = b * price
            q = f"{name} buys {b} {item} at ${price} each and pays with ${cost + c}. How much change does {name} get?"
            ans = f"The {item} cost {b} * {price} = <<{b}*{price}={cost}>>{cost} dollars.\nThe change is {cost + c} - {cost} = <<{cost + c}-{cost}={c}>>{c} dollars.\n#### {c}"
        elif kind == 2:
            total = a * b
            q = f"There are {total} {item} shared equally among {a} friends. How many {item} does each friend get, and how many do {name} and {other} get together?"
            ans = f"Each friend gets {total} / {a} = <<{total}/{a}={b}>>{b} {item}.\nTogether they get 2 * {b} = <<2*{b}={2 * b}>>{2 * b} {item}.\n#### {2 * b}"
        else:
            x = rng.randint(2, 15)
            q = f"Solve for x: {a}x + {c} = {a * x + c}. Then compute x^2 - {c}."
            ans = f"Subtract {c} from both sides: {a}x = {a * x + c} - {c} = <<{a * x + c}-{c}={a * x}>>{a * x}.\nDivide by {a}: x = {a * x} / {a} = <<{a * x}/{a}={x}>>{x}.\nThen x^2 - {c} = {x * x} - {c} = <<{x * x}-{c}={x * x - c}>>{x * x - c}.\n#### {x * x - c}"
        yield {"question": q, "answer": ans}


def prose_rows(devil_path):
    with gzip.open(devil_path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    start = text.find("\nA, n.")
    text = text[start if start > 0 else 0:]
    entries, cur = [], []
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.split(",")[0].isupper() and cur:
            entries.append("\n".join(cur).strip()); cur = []
        if line.startswith("00-database"):
            continue
        cur.append(line)
    entries.append("\n".join(cur).strip())
    for i, e in enumerate(entries):
        if e:
            yield {"id": i, "text": e}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devil", default="/usr/share/dictd/devil.dict.dz")
    ap.add_argument("--math-problems", type=int, default=1500)
    args = ap.parse_args()
    write_jsonl(os.path.join(ROOT, "code", "cpython-stdlib.jsonl"), code_rows())
    write_jsonl(os.path.join(ROOT, "math", "word-problems.jsonl"), math_rows(args.math_problems))
    write_jsonl(os.path.join(ROOT, "prose", "devils-dictionary.jsonl"), prose_rows(args.devil))


if __name__ == "__main__":
    sys.exit(main())
