# One command checks everything: `make check` (format, lint, types, tests). CI runs exactly this.
PY ?= python3

.PHONY: check fmt lint types test bench constraints system-deps pjsua2

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
	.constraints-venv/bin/pip install -q -e '.[dev,pipecat]'
	{ sed -n '1,2p' constraints.txt; .constraints-venv/bin/pip freeze --exclude-editable | grep -v '^#'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .constraints-venv

# A high-capacity pjsua2 (1024 calls per worker process instead of the PyPI wheel's 4) built from pjproject 2.15.1
# into the active venv (PYTHON=...; WHEEL_DIR=dir for a wheel instead); docs/capacity.md
PJPROJECT_TARBALL ?= pjproject-2.15.1.tar.gz
pjsua2:
	PYTHON=$(PY) deploy/build-pjsua2 $(PJPROJECT_TARBALL)
