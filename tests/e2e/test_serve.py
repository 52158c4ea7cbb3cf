"""`dialer serve` as a real process: CLI-made key, REST-made campaign, SIP calls to SIPp, a live voice
worker, a Prometheus scrape that promtool accepts, and a clean SIGTERM.

Numbers are London ones: the UK has no legal calling-hours rule, so the window is open whenever CI runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from dialer.storage import SqlStore
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import Sipp, free_port
from tests.system_tools import find, require, required

pytestmark = pytest.mark.timeout(90)

DIDS = ["+442079460100", "+442079460101"]
CALLEES = [f"+44207946020{i}" for i in range(5)]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    http: httpx.AsyncClient
    log: Path
    database_url: str


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []

    def start(scenario: str, **kwargs: Any) -> Sipp:
        peer = Sipp(tmp_path).start(scenario, **kwargs)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.kill()


def spawn_serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dialer.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def promtool_check_metrics(text: bytes) -> None:
    promtool = require("promtool", "prometheus")
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    http_port = free_port()
    env = os.environ | {
        "DIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'dialer.db'}",
        "DIALER_HTTP_PORT": str(http_port),
        "DIALER_SIP_PORT": str(free_port()),
        "DIALER_SIP_RTP_PORT": str(free_port(40)),
        "DIALER_SIP_RTP_PORTS_PER_WORKER": "40",
        "DIALER_DISPATCH_TICK_SECONDS": "0.2",
        "DIALER_LOG_FORMAT": "json",
    }
    tenant = cli(env, "tenants", "create", "Acme Clinic", "--region", "GB")
    key = cli(env, "keys", "create", "--tenant", tenant)
    assert key.startswith("sk_live_")
    log = tmp_path / "serve.log"
    proc = spawn_serve(env, log)
    base = f"http://127.0.0.1:{http_port}"
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=10) as http:
        try:
            for _ in range(300):
                if proc.poll() is not None:
                    pytest.fail(f"dialer serve exited {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            yield Served(proc, http, log, env["DIALER_DATABASE_URL"])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_campaign_end_to_end_through_the_running_process(served: Served, sipp) -> None:
    http = served.http
    health = await ok(await http.get("/health"))
    assert health["status"] == "healthy", health
    assert health["components"]["sip_workers"]["capacity"] > 0

    worker = ReferenceWorker(greeting_seconds=0.2)
    peer = sipp("answer_bye", calls=len(CALLEES))
    try:
        agent = await ok(await http.post("/agents", json={"name": "Bot", "worker_url": await worker.start()}))
        trunk = await ok(
            await http.post(
                "/trunks", json={"name": "sipp", "host": "127.0.0.1", "port": peer.port, "max_cps": 50}
            )
        )
        for did in DIDS:
            await ok(
                await http.post("/phone-numbers/import", json={"phone_number": did, "trunk_id": trunk["id"]})
            )
        created = await ok(
            await http.post(
                "/campaigns",
                json={
                    "name": "Spring check-ups",
                    "agent_id": agent["id"],
                    "candidates": [{"name": f"P{i}", "phone": p} for i, p in enumerate(CALLEES)],
                    "timezone": "Europe/London",
                    "call_hours_start": "00:00:00",
                    "call_hours_end": "00:00:00",
                    "call_days": [
                        "Monday",
                        "Tuesday",
                        "Wednesday",
                        "Thursday",
                        "Friday",
                        "Saturday",
                        "Sunday",
                    ],
                    "max_concurrent_calls": 2,
                    "from_numbers": DIDS,
                    "start_campaign": True,
                },
            )
        )
        assert (created["total_prospects"], created["started"]) == (len(CALLEES), True)
        campaign_id = created["campaign_id"]

        async def status() -> str:
            return str((await ok(await http.get(f"/campaigns/{campaign_id}")))["status"])

        for _ in range(300):
            if await status() == "completed":
                break
            await asyncio.sleep(0.1)
        assert await status() == "completed"
        assert await peer.finished() == 0

        calls = (await ok(await http.get("/calls", params={"limit": 50})))["calls"]
        assert len(calls) == len(CALLEES)
        assert {c["status"] for c in calls} == {"completed"}
        assert len(worker.sessions) == len(CALLEES), "every answered call reached the voice worker"
    finally:
        await worker.stop()

    scrape = await http.get("/metrics")
    assert scrape.status_code == 200
    text = scrape.content
    assert b"dialer_call_attempts_total{" in text
    assert b'dialer_http_requests_total{method="POST",route="/campaigns",status="200"}' in text
    assert not any(number.lstrip("+").encode() in text for number in DIDS + CALLEES)
    if find("promtool") is not None or required():
        promtool_check_metrics(text)  # `promtool check metrics` on a live scrape

    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.proc.wait, 30) == 0
    logged = served.log.read_text()
    assert not any(number in logged or number.lstrip("+") in logged for number in DIDS + CALLEES)


async def test_sigterm_with_calls_up_records_every_call(served: Served, sipp) -> None:
    http = served.http
    peer = sipp("answer", calls=2)
    worker = ReferenceWorker(greeting_seconds=0.2)
    agent = await ok(await http.post("/agents", json={"name": "Bot", "worker_url": await worker.start()}))
    trunk = await ok(
        await http.post(
            "/trunks", json={"name": "sipp", "host": "127.0.0.1", "port": peer.port, "max_cps": 50}
        )
    )
    await ok(
        await http.post("/phone-numbers/import", json={"phone_number": DIDS[0], "trunk_id": trunk["id"]})
    )
    created = await ok(
        await http.post(
            "/campaigns",
            json={
                "name": "Held",
                "agent_id": agent["id"],
                "candidates": [{"name": "A", "phone": CALLEES[0]}],
                "timezone": "Europe/London",
                "call_hours_start": "00:00:00",
                "call_hours_end": "00:00:00",
                "call_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
                "from_numbers": [DIDS[0]],
                "start_campaign": True,
            },
        )
    )

    async def up() -> bool:
        calls = (await ok(await http.get("/calls")))["calls"]
        return len(calls) == 1 and calls[0]["status"] in ("triggered", "in-progress")

    for _ in range(100):
        if await up():
            break
        await asyncio.sleep(0.1)
    assert await up(), "the call is up"
    await asyncio.sleep(0.5)  # SIPp has answered: the call is held until we hang up
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.proc.wait, 30) == 0

    store = SqlStore(served.database_url)
    try:
        assert await store.open_attempts() == [], "the call was hung up and recorded before exit"
        [call] = await store.list_attempts(UUID(created["campaign_id"]))
        assert (call.status, call.outcome, call.reason) == ("ended", "answered", "OK (shutdown)")
    finally:
        store.dispose()
    await worker.stop()
    assert worker.sessions and worker.sessions[0].stopped, "the voice worker was sent `stop`"
