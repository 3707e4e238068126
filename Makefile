# lowbit: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv and install what they need (torch pinned to the CPU wheel).

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results
SANITIZER_DIR := build/asan

.PHONY: install test demo sanitize wheel-check bench experiments clean

$(STAMP): pyproject.toml setup.py constraints.txt $(wildcard csrc/*.c csrc/*.h) emulators/_c/build.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,demo,torch]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

demo: $(STAMP)
	$(BIN)/lowbit demo --out $(OUT)

# The wheel holds one top-level package, lowbit, that works outside the checkout
# (fresh venv, no -e) and gives the development install's codes.
wheel-check: $(STAMP)
	$(BIN)/python tests/install/check_wheel.py

# The C backend under AddressSanitizer + UBSan, tested against the reference.
sanitize: $(STAMP)
	$(BIN)/python -m lowbit.emulators._c.build --sanitize --outdir $(SANITIZER_DIR)
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LOWBIT_C_MODULE_DIR=$(SANITIZER_DIR) LOWBIT_TEST_BACKENDS=c LOWBIT_BACKEND=c \
	$(BIN)/python -m pytest -q --capture=sys tests/emulators

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet apytypes qtorch || true
	$(BIN)/python -m pip install --quiet xlns || true
	$(BIN)/python benchmarks/bench_fixed.py --out docs/performance/fixed.md
	$(BIN)/python benchmarks/bench_lns.py --out docs/performance/lns.md
	$(BIN)/python benchmarks/bench_torch.py --out docs/performance/torch.md
	$(BIN)/python benchmarks/bench_training.py --out docs/performance/training.md

# Every result grid of docs/results (hours on 2 cores; resumable: rerun to
# continue), then the tables. GRID:DATA:SEEDS:EPOCHS (no epochs: the grid fixes its length). Fashion-MNIST: apt-get install dataset-fashion-mnist.
GRIDS := lns-sweep:digits:3:30 lns:digits:3:30 qnn:digits:3:30 eqprop:digits:3:10 \
	qnn:fashion-mnist:3:10 lns:fashion-mnist:3:3 eqprop:fashion-mnist:3:5 \
	lns-matmul-parts:fashion-mnist:2:3 \
	eqprop-sweep:digits:3:10 lns-sweep:fashion-mnist:1:3 eqprop-sweep:fashion-mnist:1:3 \
	nodes:fashion-mnist:2: teacher:digits:3: teacher:fashion-mnist:2: \
	language:digits:3: language:fashion-mnist:3: nodes-cnn:fashion-mnist:1: \
	slide-xmc:digits:3: slide-wide:fashion-mnist:3: \
	mixed-precision:fashion-mnist:3:3 mp-large-batch:fashion-mnist:3:20
experiments: $(STAMP)
	for g in $(GRIDS); do IFS=: read grid data seeds epochs <<< "$$g"; \
	  OMP_NUM_THREADS=1 $(BIN)/lowbit experiment run $$grid --data $$data --seeds $$seeds \
	    $${epochs:+--epochs $$epochs} || exit 1; done
	$(BIN)/lowbit experiment tables --docs docs/results

clean:
	rm -rf build $(VENV) emulators/_c/_lowbit_c*.so emulators/_c/_lowbit_c.c
