#!/usr/bin/env bash
# One run of every GPU check, for the lent CUDA machine (no internet there):
#   scripts/gpu-bundle.sh                        # here: the CUDA binary and the data, in gpu-bundle/
#   MOE_BIN=gpu-bundle/moe DATA=gpu-bundle/data512 scripts/gpu-check.sh RESULTS_DIR   # there
# Dry run of the CPU parts on any machine (tiny model, few steps):
#   DEVICE=cpu PRESET=tiny BLOCK=128 STEPS=4 LONG_STEPS=10 MICRO_BATCHES=2 scripts/gpu-check.sh /tmp/gpu-dry
#
# Writes into RESULTS_DIR: card.txt, parity.txt, matmul.txt, throughput.tsv
# (dense and MoE tokens/s at block 512 and the largest micro-batch that ran),
# summary.txt (MoE/dense step-time ratio, MFU), and moe-200/ (a 200-step MoE
# run on the embedded corpora: metrics.jsonl with losses and routing).
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh RESULTS_DIR}
bin=${MOE_BIN:-target/release/moe}
device=${DEVICE:-cuda}
preset=${PRESET:-gpt2}
steps=${STEPS:-30}
long_steps=${LONG_STEPS:-200}
block=${BLOCK:-512}
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }

say "gpu-check $(date -u +%FT%TZ) device=$device preset=$preset"
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > "$out/card.txt" 2>&1
  nvidia-smi >> "$out/card.txt" 2>&1
  say "card: $(sed -n 2p "$out/card.txt")"
  {
    "$bin" gpu parity --preset tiny
    "$bin" gpu parity --preset tiny --moe
    "$bin" gpu parity --preset gpt2 --seq 512
    "$bin" gpu parity --preset gpt2 --moe --seq 512
  } > "$out/parity.txt" 2>&1
  cat "$out/parity.txt" | tee -a "$summary"
  "$bin" gpu matmul --size 8192 > "$out/matmul.txt" 2>&1
  cat "$out/matmul.txt" | tee -a "$summary"
fi

# The embedded corpora at block 512: staged by scripts/gpu-bundle.sh (DATA),
# or prepared here (the config must sit next to demo.toml for its relative paths).
data=${DATA:-}
if [ -z "$data" ]; then
  data="$out/data512"
  data_cfg=configs/data/.gpu-check-$block.toml
  sed "s/^block_size = 128/block_size = $block/" configs/data/demo.toml > "$data_cfg"
  "$bin" data prepare --config "$data_cfg" --out "$data" --offline --force > "$out/prepare.txt" 2>&1 || { say "prepare failed"; cat "$out/prepare.txt"; exit 1; }
  rm -f "$data_cfg"
fi

# A scratch run config (no pretrained weights on that machine).
run_config() { # name moe(0/1) micro_batch steps
  local moe_section="" router=""
  if [ "$2" = 1 ]; then
    moe_section=$'[model.moe]\nlayers = [8, 9, 10, 11]\nn_experts = 8\ntop_k = 1\n'
    router=$'lb_coef = 0.01\nz_coef = 0.001\nrouter_noise_std = 0.1\n'
    if [ "$preset" != gpt2 ]; then moe_section=$'[model.moe]\nlayers = [2, 3]\nn_experts = 8\ntop_k = 1\n'; fi
  fi
  cat <<TOML
[run]
name = "$1"
[model]
init = "scratch"
preset = "$preset"
$moe_section
[train]
steps = $4
micro_batch = $3
grad_accum = 1
lr = 3e-4
$router
[eval]
every = 100000
max_blocks = 8
[log]
every = 5
[checkpoint]
every = 100000
keep = 1
TOML
}

printf 'run\tmicro_batch\ttok_per_s\tparams_active\n' > "$out/throughput.tsv"
for kind in dense moe; do
  moe=0; [ "$kind" = moe ] && moe=1
  for mb in ${MICRO_BATCHES:-32 16 8 4 2}; do
    dir="$out/tput-$kind-$mb"
    run_config "tput-$kind" "$moe" "$mb" "$steps" > "$out/tput-$kind-$mb.toml"
    if "$bin" train --config "$out/tput-$kind-$mb.toml" --data "$data" --out "$dir" --device "$device" > "$dir.log" 2>&1; then
      # tokens/s of the last train event (the first ones include kernel compilation)
      tps=$(grep '"event":"train"' "$dir/metrics.jsonl" | tail -1 | sed 's/.*"tok_per_s":\([0-9.e+-]*\).*/\1/')
      active=$(grep '"event":"start"' "$dir/metrics.jsonl" | head -1 | sed 's/.*"params_active":\([0-9]*\).*/\1/')
      printf '%s\t%s\t%s\t%s\n' "$kind" "$mb" "$tps" "$active" >> "$out/throughput.tsv"
      rm -rf "$dir/checkpoints" "$dir/final"
      break
    fi
    say "$kind micro-batch $mb failed (see $dir.log); trying smaller"
  done
done
cat "$out/throughput.tsv" | tee -a "$summary"
python3 - "$out" <<'PY' 2>/dev/null | tee -a "$summary" || say "(python3 missing: compute the ratio and MFU from throughput.tsv and matmul.txt)"
import sys, re, csv
out = sys.argv[1]
rows = {r["run"]: r for r in csv.DictReader(open(f"{out}/throughput.tsv"), delimiter="\t")}
if "dense" in rows and "moe" in rows:
    d, m = float(rows["dense"]["tok_per_s"]), float(rows["moe"]["tok_per_s"])
    print(f"MoE/dense step time at equal tokens: {d / m:.2f} (target ≤ 1.15)")
    try:
        text = open(f"{out}/matmul.txt").read()
        for dtype in ("f32", "bf16"):
            peak = float(re.search(dtype + r": ([0-9.]+) TFLOP/s", text).group(1))
            for k in ("dense", "moe"):
                n = float(rows[k]["params_active"])
                mfu = 6 * n * float(rows[k]["tok_per_s"]) / (peak * 1e12)
                print(f"MFU {k} vs measured {dtype} matmul ({peak:.0f} TFLOP/s): {100 * mfu:.1f}%")
    except (OSError, AttributeError):
        print("no matmul.txt: MFU not computed")
PY

# 200 steps of the MoE config on the demo data: losses and routing behave.
run_config "moe-200" 1 8 "$long_steps" | sed 's/^every = 100000$/every = 50/' > "$out/moe-200.toml"
"$bin" train --config "$out/moe-200.toml" --data "$data" --out "$out/moe-200" --device "$device" > "$out/moe-200.log" 2>&1
say "moe-200: $(tail -2 "$out/moe-200.log" | tr '\n' ' ')"
rm -rf "$out/moe-200/checkpoints" "$out/moe-200/final" "$out/data512/train"
say "done $(date -u +%FT%TZ)"
