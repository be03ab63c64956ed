#!/usr/bin/env bash
# The GPU checks of issue 16, as one prepared run on a lent GPU machine (see docs/gpu.md).
#
# That machine reaches no package index: this uses its own python3 (torch with CUDA, numpy, pandas,
# onnx, onnxruntime, scikit-learn, matplotlib, tqdm, pytest) and the project from this checkout,
# put on PYTHONPATH under the name depthshrink. The steps' limits add up to 475 s (issue 16: under 8
# minutes; the device tool allows 600 s a command); the run itself has not been timed on a GPU yet. Every log and table is written to
# a work folder and packed into $OUT/gpu_check.tar.gz (the device tool brings back 8 files at most),
# beside $OUT/status.txt (a line per step) and the tables' validation summary.
#
#   OUT=/tmp/gpu bash bench/gpu_check.sh          # on the GPU machine, from the repository root
#   DRY_RUN=1 bash bench/gpu_check.sh             # anywhere: print the steps, run nothing
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/out/gpu_check}
WORK=$(mktemp -d)
if [ -z "${DRY_RUN:-}" ]; then  # a dry run leaves an earlier run's status alone
  mkdir -p "$OUT"
  : > "$OUT/status.txt"
fi
SITE=$(mktemp -d)
ln -s "$ROOT" "$SITE/depthshrink"                 # the repository root is the package
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DS="$PY -m depthshrink.cli.main"
cd "$ROOT"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $WORK/NAME.log, record the exit status
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  if [ -n "${DRY_RUN:-}" ]; then return 0; fi
  local began=$SECONDS
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  local status=$?
  echo "$name: exit $status after $((SECONDS - began)) s" | tee -a "$OUT/status.txt"
  tail -n 12 "$WORK/$name.log"
}

if [ -z "${DRY_RUN:-}" ]; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv > "$WORK/gpu.csv" 2>&1
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
    | tee "$WORK/torch.txt"
fi

# 1. the GPU-marked tests (profile, train/finetune/merge, DDP over NCCL, merge on the GPU, backend conformance)
step tests 85 $PY -m pytest -q -m "cuda or tensorrt" tests/ -p no:cacheprovider

# 2. MobileNetV2-1.0 @224 tables: batch 1 and 64, fp32 (TF32 off) and fp16, CUDA graphs, validated
for batch in 1 64; do
  for precision in fp32 fp16; do
    name=mobilenet_v2_224_b${batch}_torch_${precision}
    step "profile_b${batch}_${precision}" 55 $DS profile-device --gpu 0 --backend torch --precision "$precision" \
      --model mobilenet_v2 --resolution 224 --batch-size "$batch" --lut "$WORK/$name.csv" --validate \
      --warmup-ms 50 --min-time-ms 40 --passes 2 --no-progress
  done
done

# 3. the demo network trained, finetuned and merged on the GPU (Fashion-MNIST when the machine has it)
DATA=synthetic
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && DATA=fashion-mnist
MODEL="--model mobilenet_v2_small --width-mult 0.5 --resolution 28 --in-channels 1 --num-classes 10"
step demo_train 35 $DS train $MODEL --data "$DATA" --subset 10000 --epochs 1 --device cuda --out "$WORK/demo/base" \
  --no-progress
step demo_masks 10 $PY -c "
import sys
from depthshrink.contracts.masks import per_block_masks
from depthshrink.shrink.rebuild import load_base_network
_, space = load_base_network(sys.argv[1]); per_block_masks(space).to_json(sys.argv[2])" \
  "$WORK/demo/base/last.pt" "$WORK/demo/masks.json"
step demo_finetune 35 $DS finetune --masks "$WORK/demo/masks.json" --weights "$WORK/demo/base/last.pt" --data "$DATA" \
  --subset 10000 --epochs 1 --device cuda --out "$WORK/demo/finetune" --no-progress
step demo_merge 15 $DS merge --checkpoint "$WORK/demo/finetune/last.pt" --out "$WORK/demo/merged" --no-measure

# 4. every block of MobileNetV2-1.0 @224 merged: the speed-up on the GPU
step merge_speedup 50 $PY bench/merge_latency.py --gpu 0 --min-time-ms 100 --out "$WORK/merge"

# 5. the bench's networks (issue 18) at batch 1 and 64 in fp16, when the call carried them:
#    `python bench/time_on_device.py out/bench --pack out/bench_portable` here, carry=["out/bench_portable"]
if [ -d out/bench_portable ] || [ -n "${DRY_RUN:-}" ]; then
  PYTHONPATH="$ROOT/out/bench_portable/_vendor:$PYTHONPATH" \
    step bench_networks_fp16 25 $PY bench/time_on_device.py out/bench_portable --gpu 0 --precision fp16 \
    --min-time-ms 100 --passes 2 --out "$WORK/bench_gpu_fp16"
fi

if [ -z "${DRY_RUN:-}" ]; then
  grep -h '"network"\|"error_pct"\|"measured_ms"\|"predicted_ms"' "$WORK"/*.validation.json > "$OUT/validation.txt" 2>/dev/null
  tar czf "$OUT/gpu_check.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='*.onnx' .
fi
if [ -n "${DRY_RUN:-}" ]; then echo "dry run: nothing was run"; exit 0; fi
echo "done: $(grep -c 'exit 0' "$OUT/status.txt" || true) of $(wc -l < "$OUT/status.txt") steps exited 0; results in $OUT"
