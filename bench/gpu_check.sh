#!/usr/bin/env bash
# One prepared run for a session that is lent a GPU machine (see the device tool): the CUDA- and
# TensorRT-marked tests, then a short torch-CUDA profiling benchmark. Writes its logs under $OUT.
# Usage (from the repository root, on the GPU machine): bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
pip install -q torch numpy pandas onnx onnxruntime scikit-learn matplotlib tqdm pytest 2>&1 | tail -2
pip install -q -e . --no-deps
pip install -q tensorrt-cu12 pycuda 2>&1 | tail -2 || echo "TensorRT/pycuda not installable here"
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python -m pytest -q -m "cuda or tensorrt" tests/ 2>&1 | tee "$OUT/tests.txt" | tail -5
for backend in torch tensorrt; do
  timeout 300 depthshrink profile-device --gpu 0 --backend "$backend" --model mobilenet_v2 --resolution 224 \
    --batch-size 32 --lut "$OUT/lut_$backend.csv" --validate --min-time-ms 300 --no-progress \
    2>&1 | tee "$OUT/profile_$backend.txt" | tail -6
done
