# One command checks everything: `make check` (format, lint, types, tests). CI runs exactly this.
PY ?= python3

.PHONY: check fmt lint types test bench constraints system-deps

check: lint types test

fmt:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

lint:
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

types:
	$(PY) -m mypy dialer sip scheduler api config

# -rs lists every skipped test with its reason (CI, with DIALER_TEST_REQUIRE_SERVICES=1, skips none)
test:
	$(PY) -m pytest -q -rs -p no:cacheprovider

bench:
	$(PY) bench/dispatch.py

# The Debian packages the tests need (SIPp, promtool, Kamailio, Chromium); run as root
system-deps:
	deploy/install-system-deps

# Pin what a fresh venv resolves from pyproject.toml's bounds; run `make check` on the result before committing
constraints:
	rm -rf .constraints-venv && $(PY) -m venv .constraints-venv
	.constraints-venv/bin/pip install -q -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .constraints-venv/bin/pip freeze --exclude-editable | grep -v '^#'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .constraints-venv
