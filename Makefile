# One command checks everything: `make check` (format, lint, types, tests). CI runs exactly this.
PY ?= python3

.PHONY: check fmt lint types test bench

check: lint types test

fmt:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

lint:
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

types:
	$(PY) -m mypy dialer sip scheduler api config

test:
	$(PY) -m pytest -q -p no:cacheprovider

bench:
	$(PY) bench/dispatch.py
