# The two commands of a fresh clone: `make site` and `make test`.
PYTHON ?= python3
FUZZ_LONG ?= 120
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: site test bench bench-large bench-device fuzz c-client validate clean system-deps

# System programs the tests drive for real: Debian's Chromium (through
# Playwright, with its executable path) and nginx as the HTTP origin; for the
# C device client (clients/c/): gcc, jsmn, libsodium, libcurl, clang's
# libFuzzer and the Cortex-M toolchain with newlib (its budgets).
SYSTEM_DEPS := /usr/bin/chromium /usr/sbin/nginx /usr/bin/gcc /usr/bin/readelf /usr/bin/make \
	/usr/include/jsmn.h /usr/include/sodium.h /usr/bin/curl-config /usr/bin/clang \
	/usr/bin/arm-none-eabi-gcc /usr/lib/arm-none-eabi/include/string.h
SYSTEM_PACKAGES := chromium nginx-light gcc binutils make libjsmn-dev libsodium-dev libcurl4-openssl-dev \
	clang gcc-arm-none-eabi libnewlib-arm-none-eabi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

site: $(STAMP)
	$(BIN)/relreg validate
	$(BIN)/relreg build --out public
	@echo "Site written to public/ (open public/index.html, or: $(BIN)/python -m http.server -d public)"

validate: $(STAMP)
	$(BIN)/relreg validate

system-deps:
	@missing=""; \
	for program in $(SYSTEM_DEPS); do [ -e $$program ] || missing="$$missing $$program"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system test dependencies (missing:$$missing)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

# The C device client: harness, ASan+UBSan builds, unit tests (the tests also build it on demand).
c-client: system-deps
	$(MAKE) -s -C clients/c

test: $(STAMP) system-deps c-client
	rm -rf clients/c/build/report
	$(BIN)/python -m pytest -n 2 -q
	@cat clients/c/build/report/*.txt 2>/dev/null || true

# Every fuzz target of the C client for FUZZ_LONG seconds (make test runs them briefly).
fuzz: system-deps
	$(MAKE) -C clients/c fuzz FUZZ_LONG=$(FUZZ_LONG)

# Device budgets: ARM code size, stack per entry point, document sizes against a 4 KiB buffer.
bench-device: $(STAMP) system-deps
	$(MAKE) -s -C clients/c budgets
	$(BIN)/python clients/c/bench_device.py

bench: $(STAMP)
	@command -v hugo >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq hugo >/dev/null || echo "hugo not installed: no side-by-side figure"; }
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# 100,000 releases (a nightly-build registry kept for decades) against 10,000: one run each, in
# folders per major and minor version (a flat folder of 100,000 files makes every commit write a 5 MB tree).
# On disk, not /dev/shm: two sites of 1.9 million files and their registries do not fit beside the build in memory.
bench-large: $(STAMP)
	RELREG_BENCH_WORK=$${RELREG_BENCH_WORK:-$(CURDIR)/.bench/large} $(BIN)/python benchmarks/bench.py --sizes 10000,100000 --runs 1 --layouts grouped --no-naive --no-hugo $(BENCH_ARGS)

clean:
	rm -rf $(VENV) public .public.spare .bench clients/c/build
