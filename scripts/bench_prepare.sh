#!/usr/bin/env bash
# Peak RSS and wall time of `moe data prepare` on a local bench corpus
# (BENCHMARKS.md). Usage: scripts/bench_prepare.sh [MB_PER_DOMAIN] [MOE_BINARY]
# Makes /tmp/benchcorpus-<MB> with scripts/make_bench_corpus.py if missing,
# runs 1 and 2 threads under /usr/bin/time -v, and checks the outputs are
# byte-identical. The tokenize share of the wall time: MOE_BENCH_CORPUS=DIR
# cargo bench --bench prepare.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-30}
moe=${2:-target/release/moe}
corpus=/tmp/benchcorpus-$mb
[ -f "$corpus/bench.toml" ] || python3 scripts/make_bench_corpus.py "$corpus" "$mb"
[ -x "$moe" ] || cargo build --release --bin moe
input=$(du -cb "$corpus"/*.jsonl | tail -1 | cut -f1)
echo "input: $input bytes in $corpus"
for t in 1 2; do
  out=$(mktemp -d)/out
  /usr/bin/time -v "$moe" data prepare --config "$corpus/bench.toml" --out "$out" --threads "$t" \
    2> "$out.time" > /dev/null
  wall=$(grep 'Elapsed (wall' "$out.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$out.time" | awk '{print $NF}')
  echo "threads $t: wall $wall, peak RSS $rss KiB ($(( rss * 1024 * 100 / input ))% of input)"
  if [ "$t" = 1 ]; then first=$out
  elif diff -r "$first" "$out" > /dev/null; then echo "  output identical to 1 thread"
  else echo "  OUTPUT DIFFERS from 1 thread"; exit 1
  fi
done
