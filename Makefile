# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# Debian packages, installed with apt when we are root (the code says how otherwise):
	@# Fashion-MNIST (real data) and Chromium (the report's headless-browser test)
	@missing=""; \
	  [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	      >/dev/null || echo "warning: could not install$$missing"; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The whole pipeline on embedded defaults: the shipped base (weights/), a CPU LUT measured
# adaptively, importance, search at two budgets (verified), finetune and merge on a Fashion-MNIST
# subset, baselines, measured latency and accuracy, report. A re-run resumes; `make clean` starts over.
demo: install
	$(VENV)/bin/depthshrink run --out out/demo

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The README's results and the issues' figures (about 8 hours on 2 cores, on a quiet machine:
# latencies are measured). Each step prints what the docs quote; CSVs and plots go to bench/results/.
bench: install
	$(PY) bench/timer_drift.py
	$(VENV)/bin/depthshrink run --config bench/pipeline.toml --out out/bench
	$(PY) bench/results_table.py out/bench/results.csv
	$(PY) bench/finetune_length.py --out out/bench_finetune_length --epochs 8 --seed 0 --compare out/bench \
	  --masks out/bench/search/dp-1.3x.json out/bench/search/dp-1.8x.json --pruning-ratio 0.5
	$(PY) bench/importance_vs_finetune.py --weights weights/mobilenet_v2_small_x0.5_fashion_mnist.pt --out out/bench_importance.csv
	$(PY) bench/kept_budgets.py --out out/bench_kept_budgets.csv
	$(PY) bench/merge_latency.py --model mobilenet_v2 --resolution 224 --out out/bench_merge
	$(PY) bench/predictor_accuracy.py
	rm -rf out/bench_demo_predictor && $(PY) bench/demo_predictor.py --out out/bench_demo_predictor
	$(PY) bench/multi_device_search.py --out out/bench_surface.csv
	$(PY) bench/search_latency.py
	$(PY) bench/finetune_overhead.py

clean:
	rm -rf $(VENV) out .pytest_cache
