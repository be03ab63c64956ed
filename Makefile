# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	mkdir -p out/demo
	$(VENV)/bin/depthshrink space --model mobilenet_v2_small --width-mult 0.5 --resolution 28 \
	    --in-channels 1 --num-classes 10 --out out/demo/space.json
	$(PY) bench/merge_latency.py --model mobilenet_v2_small --width-mult 0.5 --resolution 28 \
	    --in-channels 1 --min-time-ms 1000 --out out/demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/merge_latency.py --model mobilenet_v2 --resolution 224 --out out/bench_merge

clean:
	rm -rf $(VENV) out .pytest_cache
