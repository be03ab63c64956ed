# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# Real data: Debian's Fashion-MNIST (installed with apt when we are root; the loader says how otherwise)
	@if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	    >/dev/null || echo "warning: could not install dataset-fashion-mnist"; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	mkdir -p out/demo
	$(VENV)/bin/depthshrink space --model mobilenet_v2_small --width-mult 0.5 --resolution 28 \
	    --in-channels 1 --num-classes 10 --out out/demo/space.json
	$(VENV)/bin/depthshrink profile-device --cpu --model mobilenet_v2_small --width-mult 0.5 \
	    --resolution 28 --in-channels 1 --num-classes 10 --batch-size 1 --lut out/demo/lut.csv \
	    --validate --min-time-ms 200
	$(PY) bench/merge_latency.py --model mobilenet_v2_small --width-mult 0.5 --resolution 28 \
	    --in-channels 1 --min-time-ms 1000 --out out/demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/merge_latency.py --model mobilenet_v2 --resolution 224 --out out/bench_merge
	rm -f out/bench_lut_mobilenet_v2_224.csv out/bench_lut_mobilenet_v2_224.validation.json
	$(PY) bench/lut_table.py --model mobilenet_v2 --resolution 224 --out out/bench_lut_mobilenet_v2_224.csv
	$(PY) -m depthshrink.cli.main predictor evaluate --lut lut/mobilenet_v2_224_b1_onnxruntime_cpu.csv --plot out/parity.png
	$(PY) bench/search_latency.py
	rm -f out/bench_adaptive.csv out/bench_adaptive.validation.json
	$(PY) bench/adaptive_profiling.py --out out/bench_adaptive.csv

clean:
	rm -rf $(VENV) out .pytest_cache
