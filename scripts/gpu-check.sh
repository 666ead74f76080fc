#!/usr/bin/env bash
# One run of every GPU check of issue 16, for the lent CUDA machine (no
# internet there):
#   scripts/gpu-bundle.sh                        # here: the CUDA binary and the data, in gpu-bundle/
#   MOE_BIN=gpu-bundle/moe DATA=gpu-bundle/data512 scripts/gpu-check.sh RESULTS_DIR   # there
# Dry run of everything but the CUDA-only parts on any machine (tiny model,
# few steps; PyTorch with transformers for the yardstick, or TORCH=0):
#   DEVICE=cpu PRESET=tiny BLOCK=64 STEPS=3 LONG_STEPS=6 MICRO_BATCHES="4" \
#     PYTHON=/tmp/torchvenv/bin/python scripts/gpu-check.sh /tmp/gpu-dry
#
# Writes into RESULTS_DIR:
#   card.txt, versions.txt,           card and driver; driver CUDA, NVRTC and
#   parity.txt, matmul.txt            the binary's CUDA API; CPU-vs-CUDA logits
#                                     in f32 and mixed bf16; the matmul rates
#   throughput.tsv   tokens/s and device memory of training steps (ours: the
#                    most in use at a train event; PyTorch: its allocator's peak),
#                    ours (`moe train`) and PyTorch's (scripts/torch_gpu_bench.py),
#                    dense and MoE, f32 and bf16, at micro-batch 2 and the
#                    largest of MICRO_BATCHES that fits
#   moe-200/         the study's MoE config (configs/runs/moe.toml, random
#                    init) for LONG_STEPS steps in LONG_PRECISION, a train
#                    event every 20 steps with the device memory in use
#   summary.md       scripts/gpu_summary.py over all of it: ours / PyTorch,
#                    MoE/dense step time, MFU, the long run's losses and memory
# Every step has a time limit (STEP_TIMEOUT seconds, and what is left of
# BUDGET for the whole script) so that one hang cannot spend the session's
# device time; the summary is written whatever ran.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh RESULTS_DIR}
cd "$(dirname "$0")/.."
bin=${MOE_BIN:-target/release/moe}
device=${DEVICE:-cuda}
preset=${PRESET:-gpt2}
steps=${STEPS:-30}
long_steps=${LONG_STEPS:-200}
long_precision=${LONG_PRECISION:-bf16}
block=${BLOCK:-512}
micro_batches=${MICRO_BATCHES:-32 16 8 4}
precisions=${PRECISIONS:-f32 bf16}
python=${PYTHON:-python3}
step_timeout=${STEP_TIMEOUT:-240}
deadline=$(($(date +%s) + ${BUDGET:-540}))
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }
# Runs a step under STEP_TIMEOUT and what is left of BUDGET (seconds for the
# whole script; the summary always runs); past the budget it is skipped.
limit() {
  local left=$((deadline - $(date +%s)))
  [ "$left" -gt "$step_timeout" ] && left=$step_timeout
  if [ "$left" -le 0 ]; then
    echo "skipped (BUDGET spent): $*" | tee -a "$log" >&2
    return 124
  fi
  timeout "$left" "$@"
}

say "gpu-check $(date -u +%FT%TZ) device=$device preset=$preset block=$block bundle: $(head -1 gpu-bundle/MANIFEST.txt 2> /dev/null || echo none)"
# The bundle's CubeCL settings (shared autotune and PTX caches, one stream),
# at the repository root where CubeCL looks, for this check only.
bundle_dir=$(dirname "$bin")
if [ -f "$bundle_dir/cubecl.toml" ] && [ ! -e cubecl.toml ]; then
  cp "$bundle_dir/cubecl.toml" cubecl.toml
  trap 'rm -f cubecl.toml' EXIT
  say "cubecl.toml: $bundle_dir/cubecl.toml"
fi
if [ "$device" = cuda ]; then
  # Driver and NVRTC first: a mismatch with the CUDA API the binary was
  # built for (MANIFEST.txt) explains a failure of any later step.
  {
    echo "driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1 | head -1)"
    echo "driver $(nvidia-smi 2> /dev/null | grep -o 'CUDA Version: [0-9.]*' | head -1)"
    echo "nvrtc $(ls /usr/local/cuda*/lib64/libnvrtc.so.* /usr/lib/x86_64-linux-gnu/libnvrtc.so.* 2> /dev/null | xargs -r -n1 basename | sort -u | tr '\n' ' ')"
    echo "nvcc $(nvcc --version 2> /dev/null | tail -1)"
    echo "binary $(grep -h 'CUDARC_CUDA_VERSION' "$bundle_dir/MANIFEST.txt" 2> /dev/null || echo 'CUDA API version not recorded')"
  } > "$out/versions.txt" 2>&1
  tee -a "$log" < "$out/versions.txt"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > "$out/card.txt" 2>&1
  nvidia-smi >> "$out/card.txt" 2>&1
  say "card: $(sed -n 2p "$out/card.txt")"
  # A binary without CUDA, or a driver it cannot load, would fail every later
  # step: stop here, with the reason, while the device time is still there.
  if ! limit "$bin" gpu matmul --device cuda --size 256 --iters 1 > "$out/probe.txt" 2>&1; then
    say "the CUDA backend does not run: $(tail -3 "$out/probe.txt" | tr '\n' ' ')"
    exit 1
  fi
  {
    limit "$bin" gpu parity --preset tiny
    limit "$bin" gpu parity --preset tiny --moe
    limit "$bin" gpu parity --preset gpt2 --seq 512
    limit "$bin" gpu parity --preset gpt2 --moe --seq 512
  } > "$out/parity.txt" 2>&1
  tee -a "$log" < "$out/parity.txt"
fi

# The embedded corpora at $block: staged by scripts/gpu-bundle.sh (DATA), or
# prepared here (the config must sit next to demo.toml for its relative paths).
data=${DATA:-}
if [ -z "$data" ]; then
  data="$out/data$block"
  data_cfg=configs/data/.gpu-check-$block.toml
  sed "s/^block_size = 128/block_size = $block/" configs/data/demo.toml > "$data_cfg"
  limit "$bin" data prepare --config "$data_cfg" --out "$data" --offline --force > "$out/prepare.txt" 2>&1 || { say "prepare failed"; cat "$out/prepare.txt"; rm -f "$data_cfg"; exit 1; }
  rm -f "$data_cfg"
fi

# The last four blocks become MoE blocks (8-11 of GPT-2 small).
case "$preset" in
  gpt2) moe_layers="8, 9, 10, 11" ;;
  *) moe_layers="0, 1, 2, 3" ;;
esac

# A scratch run config for the throughput runs (no pretrained weights there).
run_config() { # name moe(0/1) micro_batch steps precision
  local moe_section="" router=""
  if [ "$2" = 1 ]; then
    moe_section=$'[model.moe]\n'"layers = [$moe_layers]"$'\nn_experts = 8\ntop_k = 1\n'
    router=$'lb_coef = 0.01\nz_coef = 0.001\nrouter_noise_std = 0.1\n'
  fi
  cat << TOML
[run]
name = "$1"
purpose = "gpu-check throughput"
[model]
init = "scratch"
preset = "$preset"
$moe_section
[train]
steps = $4
micro_batch = $3
grad_accum = 1
lr = 3e-4
precision = "$5"
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

# tokens/s of the last train event (the first ones include kernel compilation
# and autotuning) and the largest device memory any train event saw.
train_figures() { # metrics.jsonl
  local last tps most
  last=$(grep '"event":"train"' "$1" | tail -1)
  tps=$(echo "$last" | sed 's/.*"tok_per_s":\([0-9.e+-]*\).*/\1/')
  most=$(grep -o '"device_bytes":[0-9]*' "$1" | cut -d: -f2 | sort -n | tail -1)
  printf '%s\t%s' "$tps" "${most:-0}"
}

ours_run() { # kind moe precision micro_batch → a throughput row; 2 = out of memory, 1 = other failure
  local dir="$out/tput-$1-$3-$4"
  run_config "tput-$1" "$2" "$4" "$steps" "$3" > "$dir.toml"
  if limit "$bin" train --config "$dir.toml" --data "$data" --out "$dir" --device "$device" > "$dir.log" 2>&1; then
    printf 'ours\t%s\t%s\t%s\t%s\n' "$1" "$3" "$4" "$(train_figures "$dir/metrics.jsonl")" >> "$out/throughput.tsv"
    rm -rf "$dir/checkpoints" "$dir/final" "$dir/initial"
    return 0
  fi
  say "ours $1 $3 micro-batch $4 failed (see $dir.log)"
  grep -qi "out of memory\|outofmemory\|memory allocation" "$dir.log" && return 2
  return 1
}

printf 'impl\trun\tprecision\tmicro_batch\ttok_per_s\tmem_bytes\n' > "$out/throughput.tsv"
# The figures that matter most first (issue 29): per precision, bf16 before
# f32, dense and MoE at the largest micro-batch that fits (tried largest
# first; a failure other than out-of-memory ends the search), then PyTorch
# at the same shapes; then the matmul rate, micro-batch 2 and the long run.
ordered=""
for p in bf16 f32; do
  case " $precisions " in *" $p "*) ordered="$ordered $p" ;; esac
done
for precision in $ordered; do
  for kind in dense moe; do
    moe=0
    [ "$kind" = moe ] && moe=1
    for mb in $micro_batches; do
      ours_run "$kind" "$moe" "$precision" "$mb"
      [ $? = 2 ] || break
    done
  done
  # PyTorch on the same card, same shapes (scripts/torch_gpu_bench.py).
  if [ "${TORCH:-1}" = 1 ]; then
    limit "$python" scripts/torch_gpu_bench.py --device "$device" --preset "$preset" --block "$block" \
      --micro-batches "$(echo "$micro_batches" | tr ' ' ',')" --dtypes "$precision" \
      --out "$out/torch-$precision.tsv" > "$out/torch-$precision.log" 2>&1 ||
      say "torch_gpu_bench $precision failed (see torch-$precision.log)"
    tail -n +2 "$out/torch-$precision.tsv" >> "$out/throughput.tsv" 2> /dev/null
  fi
done
if [ "$device" = cuda ]; then
  limit "$bin" gpu matmul --size 8192 > "$out/matmul.txt" 2>&1
  tee -a "$log" < "$out/matmul.txt"
fi
for precision in $ordered; do
  for kind in dense moe; do
    moe=0
    [ "$kind" = moe ] && moe=1
    grep -q "^ours	$kind	$precision	2	" "$out/throughput.tsv" || ours_run "$kind" "$moe" "$precision" 2
  done
done
tee -a "$log" < "$out/throughput.tsv"

# The study's MoE config, random init, LONG_STEPS steps, a train event every
# 20 steps (device memory with it).
sed -e 's/^init = "pretrained"/init = "scratch"/' \
  -e "s/^preset = \"gpt2\"/preset = \"$preset\"/" \
  -e "s/^layers = \[8, 9, 10, 11\]/layers = [$moe_layers]/" \
  -e "s/^steps = .*/steps = $long_steps/" \
  -e 's/^every = 200$/every = 100/' \
  -e 's/^every = 10$/every = 20/' \
  -e 's/^every = 500$/every = 100000/' \
  -e "s/^lb_scope = \"micro\"/lb_scope = \"micro\"\nprecision = \"$long_precision\"/" \
  configs/runs/moe.toml > "$out/moe-200.toml"
limit "$bin" train --config "$out/moe-200.toml" --data "$data" --out "$out/moe-200" --device "$device" > "$out/moe-200.log" 2>&1 ||
  say "moe-200 failed (see moe-200.log)"
rm -rf "$out/moe-200/checkpoints" "$out/moe-200/final" "$out/moe-200/initial" "$out/data$block/train"

"$python" scripts/gpu_summary.py "$out" --preset "$preset" --block "$block" > "$out/summary.md" 2>&1 ||
  say "gpu_summary failed (see summary.md)"
tee -a "$log" < "$out/summary.md"
say "done $(date -u +%FT%TZ)"
