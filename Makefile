# The two commands of a fresh clone: `make site` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: site test bench bench-large validate clean system-deps

# System programs the tests drive for real: Debian's Chromium (through
# Playwright, with its executable path) and nginx as the HTTP origin.
SYSTEM_DEPS := /usr/bin/chromium /usr/sbin/nginx /usr/bin/gcc /usr/bin/readelf

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
	for program in $(SYSTEM_DEPS); do [ -x $$program ] || missing="$$missing $$program"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system test dependencies (missing:$$missing)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium nginx-light gcc binutils >/dev/null; \
	fi

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	@command -v hugo >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq hugo >/dev/null || echo "hugo not installed: no side-by-side figure"; }
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# 100,000 releases (a nightly-build registry kept for decades) against 10,000: one run each.
bench-large: $(STAMP)
	$(BIN)/python benchmarks/bench.py --sizes 10000,100000 --runs 1 --layouts flat --no-naive --no-hugo $(BENCH_ARGS)

clean:
	rm -rf $(VENV) public .public.spare .bench
