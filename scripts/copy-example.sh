#!/usr/bin/env bash
# Copies what a study's report links to and reads — report/, every run's
# analysis.json and PNG figures, summary.txt — from a study directory into a
# committed example folder, replacing it whole (built next to it, renamed
# into place):
#
#   scripts/copy-example.sh runs/demo docs/examples/demo
#   scripts/copy-example.sh runs/cpu-study docs/examples/cpu-study
#
# SRC/summary.txt is what the study printed (`moe demo > runs/demo/summary.txt`).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: copy-example.sh SRC DEST}
dest=${2:?usage: copy-example.sh SRC DEST}
[ -f "$src/summary.txt" ] || { echo "copy-example: $src/summary.txt missing" >&2; exit 1; }
[ -f "$src/report/report.md" ] || { echo "copy-example: $src/report/report.md missing" >&2; exit 1; }
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/report" "$tmp/report"
(cd "$src" && find . -path '*/analysis/*' -type f \( -name analysis.json -o -name '*.png' \)) |
  while read -r f; do
    mkdir -p "$tmp/$(dirname "$f")"
    cp "$src/$f" "$tmp/$f"
  done
sed "s#$src/#$dest/#g" "$src/summary.txt" > "$tmp/summary.txt"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "copy-example: $src → $dest"
