"""Stream ports are reused, never destroyed while pjsua runs (a real pjsua2 conference bridge)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
CYCLES = 60


def test_ports_are_reused_and_pjsua_exits_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.sip.port_pool_probe", str(CYCLES)],
        cwd=ROOT, capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # a segfault or a pjsua assert shows here
    assert "Traceback" not in done.stderr, done.stderr[-2000:]  # nor may a clock-thread callback fail
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # 2 ports per cycle, each back in service 0.2 s after its call: a handful, not 120.
    assert seen["ports"] <= 12, seen
    assert seen["reused"] >= 2 * CYCLES - seen["ports"]
    # Every pair heard each other while linked; a port given back feeds nobody, bar a tick
    # already under way when it went quiet.
    assert min(seen["fed"]) >= 1, seen["fed"]
    assert max(seen["after_return"]) <= 2, seen["after_return"]  # two ports, a tick each
