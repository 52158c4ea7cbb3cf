"""`dialer demo` as a user runs it: a real process, SIPp as the carrier, a summary, exit 0, no numbers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialer.demo_carrier import DID_NUMBERS, HUMAN_NUMBER, demo_prospects

pytestmark = pytest.mark.timeout(100)

PROSPECTS = 12


def demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", "demo", "--data-dir", str(tmp_path / "demo-data"), *args],
        cwd=tmp_path,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def figure(output: str, label: str) -> int:
    """The first number on the summary row that starts with ``label``."""
    match = re.search(rf"^\W*{re.escape(label)}\W+(\d+)", output, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{output}"
    return int(match.group(1))


def test_demo_runs_a_mixed_campaign_to_the_end(tmp_path: Path) -> None:
    if shutil.which("sipp") is None and os.environ.get("DIALER_TEST_REQUIRE_SERVICES") != "1":
        pytest.skip("sipp not installed (Debian package sip-tester)")
    started = time.monotonic()
    done = demo(tmp_path, "--prospects", str(PROSPECTS))
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert took < 60, f"the demo took {took:.0f} s"

    summary = output[output.index("demo summary") :]
    assert re.search(r"ASR\W+\d+%", summary), summary
    assert re.search(r"ACD\W+\d+\.\d+ s", summary), summary
    assert re.search(r"PDD p95\W+\d+\.\d+ s", summary), summary
    for label in ("answered", "busy", "no_answer", "retries"):
        assert figure(summary, label) > 0, summary
    # The callees that press 0 reach the human: by an accepted REFER, and bridged after a refused one.
    assert figure(summary, "transferred") == figure(summary, "transfers") > 0, summary
    assert figure(summary, "prospects completed") + figure(summary, "prospects failed") == PROSPECTS
    assert "dialling" in output and "retry scheduled" in output, "plain progress lines when not a TTY"

    numbers = [p.phone for p in demo_prospects(PROSPECTS)] + list(DID_NUMBERS) + [HUMAN_NUMBER]
    assert not any(n in output or n.lstrip("+") in output for n in numbers), "no phone number shown"
    assert "2079460" not in output and "7946 0" not in output


def test_demo_without_sipp_says_how_to_install_it(tmp_path: Path) -> None:
    env = os.environ | {"PATH": str(tmp_path)}  # an empty PATH: no sipp on it
    done = demo(tmp_path, env=env)
    assert done.returncode == 2
    assert "apt-get install sip-tester" in done.stdout + done.stderr
