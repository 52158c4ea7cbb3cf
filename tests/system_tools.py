"""System tools the tests drive (SIPp, promtool, Kamailio, Chromium): found, or else skipped with a
reason locally and failed under CI (``CI`` or ``DIALER_TEST_REQUIRE_SERVICES=1``).

`make system-deps` installs them all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def required() -> bool:
    """Under CI a missing server or tool fails the run: a skipped test there would hide a gap."""
    return os.environ.get("DIALER_TEST_REQUIRE_SERVICES") == "1" or os.environ.get("CI", "") in ("1", "true")


def find(name: str) -> str | None:
    """The tool's path: on PATH, or in /usr/sbin (Debian puts kamailio there, outside a user's PATH)."""
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).exists():
        found = str(Path("/usr/sbin", name))
    return found


def missing_message(name: str, package: str) -> str:
    return f"{name} is not installed (`make system-deps`, or apt-get install {package})"


def needs(name: str, package: str) -> pytest.MarkDecorator:
    """Mark a test that runs ``name``: skipped (with the reason) when it is missing, except under CI,
    where the test runs and fails on ``require``."""
    return pytest.mark.skipif(find(name) is None and not required(), reason=missing_message(name, package))


def require(name: str, package: str) -> str:
    """The tool's path, or a failed test that says how to install it."""
    found = find(name)
    if found is None:
        pytest.fail(missing_message(name, package))
    return found


def skip_module_unless(name: str, package: str) -> None:
    """At a module's top: skip the whole module when the tool is missing, except under CI."""
    if find(name) is None and not required():
        pytest.skip(missing_message(name, package), allow_module_level=True)


def import_or_skip(module: str, install: str) -> None:
    """At a module's top: skip the whole module when the Python package is missing, except under CI,
    where the import error fails the run."""
    try:
        __import__(module)
    except ImportError:
        if required():
            raise
        pytest.skip(f"{module} is not installed ({install})", allow_module_level=True)
