"""The README's quickstart, run as written against a live `dialer serve` (a process, real HTTP, real SIP).

The block after the ``<!-- quickstart`` marker is executed by bash unchanged; only the addresses it
reads from the environment (``API``, ``CARRIER_PORT``, ``WORKER``) point at free ports here, and
`dialer serve` gets its ports from its documented DIALER_ variables. The other three terminals of the
quickstart run as the README says: the reference voice worker and SIPp's built-in ``uas``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.sip.peers import free_port
from tests.system_tools import require

pytestmark = pytest.mark.timeout(120)

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    marker = text.index("<!-- quickstart")
    match = re.compile(r"```sh\n(.*?)```", re.S).search(text, marker)
    assert match is not None, "the quickstart block follows its marker"
    return match.group(1)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):  # bounded: 30 s
        assert proc.poll() is None, f"dialer serve exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"dialer serve not ready: {log.read_text()[-2000:]}")


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    sipp = require("sipp", "sip-tester")
    require("curl", "curl")
    bindir = str(Path(sys.executable).parent)  # where pip put `dialer`
    http, sip, carrier, worker = free_port(), free_port(2), free_port(), free_port()
    env = os.environ | {
        "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        "DIALER_HTTP_PORT": str(http),
        "DIALER_SIP_PORT": str(sip),
        "DIALER_SIP_RTP_PORT": str(free_port(40)),
        "DIALER_SIP_RTP_PORTS_PER_WORKER": "40",
        "NO_PROXY": "*",
    }
    api = f"http://127.0.0.1:{http}"
    log = tmp_path / "serve.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            ["dialer", "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60
        )
        with log.open("wb") as out:
            procs.append(subprocess.Popen(["dialer", "serve"], cwd=tmp_path, env=env, stdout=out, stderr=out))
        cmd = [sys.executable, "-m", "sip.reference_worker", "--port", str(worker)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cmd = [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(carrier), "-nostdin"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_ready(api, procs[0], log)

        block = env | {"API": api, "CARRIER_PORT": str(carrier), "WORKER": f"ws://127.0.0.1:{worker}"}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", quickstart()],
            cwd=tmp_path,
            env=block,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        trunk, number, campaign, calls = answers
        assert (trunk["host"], trunk["port"]) == ("127.0.0.1", carrier)
        assert number["phone_number"] == "+442079460100" and number["assigned"] is True
        assert campaign["success"] is True and campaign["started"] is True
        assert campaign["total_prospects"] == 1
        assert calls["total"] == 1, calls
        [call] = calls["data"]
        assert (call["phone_to"], call["phone_from"], call["direction"]) == (
            "+442079460201",
            "+442079460100",
            "outbound",
        )
        # Answered by SIPp: up now, or already over with the answer recorded.
        assert call["status"] == "in-progress" or (call["status"], call["outcome"]) == (
            "completed",
            "answered",
        ), call
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
