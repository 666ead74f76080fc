#!/usr/bin/env bash
# Stages everything scripts/gpu-check.sh needs on the lent GPU machine (no
# internet, no cargo registry) into one git-ignored folder (BACK-8):
#
#   scripts/gpu-bundle.sh [DIR]          # default: gpu-bundle/ (in .gitignore)
#
# DIR then holds `moe` (the CUDA binary, stripped), `data512/` (the embedded
# corpora prepared at block 512, the data the GPU check trains on),
# `cubecl.toml` (scripts/cubecl-bundle.toml with its caches in DIR/cubecl-cache)
# and MANIFEST.txt (git commit, features, CUDA version, sizes). The repository's tracked files
# (configs/, scripts/) travel with the working tree; carry only DIR:
#
#   run(carry=["gpu-bundle"], command="MOE_BIN=gpu-bundle/moe DATA=gpu-bundle/data512 scripts/gpu-check.sh $OUT/gpu")
#
# MOE_BIN=path skips the build and stages that binary instead (tests, dry
# runs); FEATURES (default cuda) are the cargo features of the build;
# CUDARC_CUDA_VERSION (default 13000: the GPU machine's CUDA 13) is the CUDA
# API the binary is built against;
# BUNDLE_LIMIT_BYTES (default 64 MiB, what a device call can carry) is the
# size the folder must stay under. The folder is built next to DIR and renamed
# into place only when complete and under the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-gpu-bundle}
features=${FEATURES:-cuda}
limit=${BUNDLE_LIMIT_BYTES:-$((64 * 1024 * 1024))}

bin=${MOE_BIN:-}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
if [ -z "$bin" ]; then
  cargo build --release --features "$features" --bin moe
  bin=target/release/moe
fi
[ -x "$bin" ] || { echo "gpu-bundle: no executable at $bin" >&2; exit 1; }

tmp="$dir.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$bin" "$tmp/moe"
if command -v strip > /dev/null; then strip "$tmp/moe"; fi

# The embedded corpora at block 512 (the config must sit next to demo.toml
# for its relative paths).
cfg=configs/data/.gpu-bundle-512.toml
sed "s/^block_size = 128/block_size = 512/" configs/data/demo.toml > "$cfg"
if ! "$tmp/moe" data prepare --config "$cfg" --out "$tmp/data512" --offline --force > "$tmp/prepare.log" 2>&1; then
  rm -f "$cfg"
  echo "gpu-bundle: preparing the data failed:" >&2
  cat "$tmp/prepare.log" >&2
  exit 1
fi
rm -f "$cfg" "$tmp/prepare.log"
sed "s#@CACHE@#$dir/cubecl-cache#g" scripts/cubecl-bundle.toml > "$tmp/cubecl.toml"

size=$(du -sb "$tmp" | cut -f1)
{
  echo "commit $(git rev-parse HEAD 2> /dev/null || echo unknown)$(git diff --quiet 2> /dev/null || echo ' (dirty)')"
  if [ -n "${MOE_BIN:-}" ]; then echo "binary from $MOE_BIN (features not known)"; else echo "features $features, CUDARC_CUDA_VERSION $CUDARC_CUDA_VERSION"; fi
  echo "binary $(stat -c %s "$tmp/moe") bytes (stripped)"
  echo "data512 $(du -sb "$tmp/data512" | cut -f1) bytes"
  echo "total $size bytes (limit $limit)"
} > "$tmp/MANIFEST.txt"
if [ "$size" -gt "$limit" ]; then
  echo "gpu-bundle: $dir would hold $size bytes, over the limit of $limit" >&2
  exit 1
fi
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
cat "$dir/MANIFEST.txt"
