# lowbit: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv and install what they need (torch pinned to the CPU wheel).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results
SANITIZER_DIR := build/asan

.PHONY: install test demo sanitize bench clean

$(STAMP): pyproject.toml setup.py constraints.txt $(wildcard csrc/*.c csrc/*.h) emulators/_c/build.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,demo,torch]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/lowbit demo --out $(OUT)

# The C backend under AddressSanitizer + UBSan, tested against the reference.
sanitize: $(STAMP)
	$(BIN)/python -m emulators._c.build --sanitize --outdir $(SANITIZER_DIR)
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LOWBIT_C_MODULE_DIR=$(SANITIZER_DIR) LOWBIT_TEST_BACKENDS=c LOWBIT_BACKEND=c \
	$(BIN)/python -m pytest -q --capture=sys tests/emulators

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet apytypes qtorch || true
	$(BIN)/python -m pip install --quiet xlns || true
	$(BIN)/python benchmarks/bench_fixed.py --out docs/performance/fixed.md
	$(BIN)/python benchmarks/bench_lns.py --out docs/performance/lns.md

clean:
	rm -rf build $(VENV) emulators/_c/_lowbit_c*.so emulators/_c/_lowbit_c.c
