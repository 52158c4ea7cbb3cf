"""`dialer demo` as a user runs it: a real process, SIPp or pjsua2 as the carrier, a summary, exit 0,
no numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialer.demo_carrier import DID_NUMBERS, HUMAN_NUMBER, TRANSFER, demo_prospects, first_calls
from tests.system_tools import find, missing_message, required

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


@pytest.mark.parametrize("carrier", ["sipp", "pjsua2"])
def test_demo_runs_a_mixed_campaign_to_the_end(tmp_path: Path, carrier: str) -> None:
    if carrier == "sipp" and find("sipp") is None and not required():
        pytest.skip(missing_message("sipp", "sip-tester"))
    started = time.monotonic()
    done = demo(tmp_path, "--prospects", str(PROSPECTS), "--carrier", carrier)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    print(f"the demo took {took:.0f} s")
    assert f"{'SIPp' if carrier == 'sipp' else 'pjsua2'} as the carrier" in output

    summary = output[output.index("demo summary") :]
    assert re.search(r"ASR\W+\d+%", summary), summary
    assert re.search(r"ACD\W+\d+\.\d+ s", summary), summary
    assert re.search(r"PDD p95\W+\d+\.\d+ s", summary), summary
    for label in ("answered", "busy", "no_answer", "retries"):
        assert figure(summary, label) > 0, summary
    # The callees that press 0 reach the human: by an accepted REFER, and bridged after a refused one.
    people = demo_prospects(PROSPECTS)
    asked = sum(p.script is TRANSFER for p in people)
    accepted = first_calls(people)["REFER_FIRST"]
    assert 0 < accepted < asked, "the mix has REFERs accepted and refused"
    assert figure(summary, "transferred") == figure(summary, "transfers") == asked, summary
    transfers = re.search(r"transfers\W+(\d+) of (\d+) asked for \((.*?)\)", summary)
    assert transfers, summary
    assert transfers.group(3) == f"bridge {asked - accepted}, refer {accepted}", "every refused REFER bridged"
    # One vocabulary: the live lines name outcomes as the summary, the API and the metrics do.
    assert "rejected" in output and "declined" not in output and "no answer" not in output
    assert figure(summary, "prospects completed") + figure(summary, "prospects failed") == PROSPECTS
    assert "dialling" in output and "retry scheduled" in output, "plain progress lines when not a TTY"

    numbers = [p.phone for p in people] + list(DID_NUMBERS) + [HUMAN_NUMBER]
    assert not any(n in output or n.lstrip("+") in output for n in numbers), "no phone number shown"
    assert "2079460" not in output and "7946 0" not in output


def test_demo_without_sipp_plays_the_carrier_with_pjsua2(tmp_path: Path) -> None:
    env = os.environ | {"PATH": str(tmp_path)}  # an empty PATH: no sipp on it
    done = demo(tmp_path, "--prospects", "4", env=env)  # --carrier auto
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "pjsua2 as the carrier" in output and "demo summary" in output


def test_demo_asked_for_sipp_without_it_says_how_to_install_it(tmp_path: Path) -> None:
    env = os.environ | {"PATH": str(tmp_path)}
    done = demo(tmp_path, "--carrier", "sipp", env=env)
    assert done.returncode == 2
    assert "apt-get install sip-tester" in done.stdout + done.stderr
