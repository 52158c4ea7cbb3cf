"""Several worker processes: calls spread over them, a full gateway says so, a killed worker comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from uuid import UUID

import pytest

from dialer.dispatch import end_outcome
from dialer.outcome import Outcome
from dialer.ports import CallAnswered, CallEnded, LauncherFull
from sip import supervisor
from sip.launcher import SipGateway
from sip.supervisor import GatewayError
from tests.sip.peers import GatewayFactory, free_port, until

pytestmark = pytest.mark.timeout(30)  # each test; SIPp and workers are killed at teardown


async def test_calls_spread_over_workers_until_full(gateway: GatewayFactory, sipp) -> None:
    gw = await gateway(workers=2)
    per_worker = gw.gateway.capacity() // 2
    assert gw.gateway.capacity() == 2 * per_worker and per_worker >= 1  # probed, not assumed
    peer = sipp("answer", calls=2 * per_worker)
    trunk = gw.trunk(peer.port)
    first = [gw.request(trunk) for _ in range(2 * per_worker - 2)]
    await asyncio.gather(*(gw.gateway.place(request) for request in first))
    rest = [gw.request(trunk) for _ in range(2)]
    for request in rest:
        await gw.gateway.place(request)
    everyone = first + rest
    await until(lambda: sum(isinstance(e, CallAnswered) for e in gw.events) == len(everyone), 10)
    assert gw.gateway.live_attempts() == {request.attempt_id for request in everyone}
    usage = gw.gateway.usage()  # what /health and /metrics show: full, and what the workers cost
    assert (usage.in_use, usage.capacity) == (len(everyone), gw.gateway.capacity())
    assert usage.cpu_seconds > 0 and usage.rss_bytes > 2 * 10 * 2**20  # two pjsua2 processes
    with pytest.raises(LauncherFull):
        await gw.gateway.place(gw.request(trunk))
    for request in everyone:
        await gw.gateway.hangup(request.attempt_id)
    ended = [await gw.ended(request.attempt_id) for request in everyone]
    assert all(e.sip_code == 200 and e.confirmed for e in ended)
    assert Counter(e.worker for e in ended) == {"sip-0": per_worker, "sip-1": per_worker}
    assert gw.gateway.usage().in_use == 0
    assert await peer.finished() == 0


async def test_killed_worker_reports_its_calls_and_comes_back(gateway: GatewayFactory, sipp) -> None:
    gw = await gateway(workers=2)
    capacity = gw.gateway.capacity()
    peer = sipp("answer", calls=5)
    trunk = gw.trunk(peer.port)
    requests = [gw.request(trunk) for _ in range(4)]
    for request in requests:
        await gw.gateway.place(request)
    await until(lambda: sum(isinstance(e, CallAnswered) for e in gw.events) == 4, 5)
    victim = gw.gateway.workers()["sip-1"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)

    await until(lambda: any(isinstance(e, CallEnded) for e in gw.events), 5)
    await asyncio.sleep(0.1)  # all of them come at once
    lost = [e for e in gw.events if isinstance(e, CallEnded)]
    assert len(lost) == 2  # the two calls routed to sip-1
    assert all((e.sip_code, e.reason, e.worker) == (None, "worker died", "sip-1") for e in lost)
    assert all(e.confirmed for e in lost)  # they had been answered before the worker died
    assert all(e.lost and end_outcome(e) is Outcome.UNKNOWN for e in lost)  # reconciled, never "failed"
    survivors = {r.attempt_id for r in requests} - {e.attempt_id for e in lost}
    assert gw.gateway.live_attempts() == survivors

    await until(lambda: gw.gateway.capacity() == capacity, 10)
    assert gw.gateway.workers()["sip-1"] not in (None, victim)
    again = gw.request(trunk)
    await gw.gateway.place(again)
    for attempt_id in [*survivors, again.attempt_id]:
        await until(lambda a=attempt_id: a in gw.gateway.live_attempts(), 1)
        await gw.gateway.hangup(attempt_id)
        assert (await gw.ended(attempt_id)).sip_code is not None


async def test_start_fails_cleanly_when_the_sip_port_is_taken() -> None:
    async def no_trunk(trunk_id: UUID) -> None:
        return None

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        gateway = SipGateway(
            no_trunk, port=taken.getsockname()[1], rtp_port=free_port(40), rtp_ports_per_worker=40
        )
        with pytest.raises(GatewayError, match="did not start"):
            await gateway.start()
    assert gateway.workers() == {"sip-0": None} and gateway.capacity() == 0


async def test_stop_hangs_up_and_reports_every_call(gateway: GatewayFactory, sipp) -> None:
    peer = sipp("answer", calls=2)
    gw = await gateway()
    trunk = gw.trunk(peer.port)
    requests = [gw.request(trunk) for _ in range(2)]
    for request in requests:
        await gw.gateway.place(request)
    await until(lambda: sum(isinstance(e, CallAnswered) for e in gw.events) == 2, 5)
    await gw.gateway.stop()
    ended = [e for e in gw.events if isinstance(e, CallEnded)]
    assert {e.attempt_id for e in ended} == {r.attempt_id for r in requests}
    assert all((e.sip_code, e.confirmed, e.reason) == (200, True, "OK (shutdown)") for e in ended)
    assert gw.gateway.live_attempts() == set() and gw.gateway.capacity() == 0
    assert await peer.finished() == 0  # both BYEs arrived


async def test_hung_worker_is_killed_and_its_call_reported_once(
    gateway: GatewayFactory, sipp, monkeypatch
) -> None:
    monkeypatch.setattr(supervisor, "REPLY_SECONDS", 0.5)
    peer = sipp("answer")
    gw = await gateway()
    capacity, frozen = gw.gateway.capacity(), gw.gateway.workers()["sip-0"]
    assert frozen is not None
    os.kill(frozen, signal.SIGSTOP)
    request = gw.request(gw.trunk(peer.port))
    await gw.gateway.place(request)  # no reply: the INVITE may have left, so it counts as placed
    ended = await gw.ended(request.attempt_id)
    assert (ended.sip_code, ended.reason, ended.confirmed) == (None, "worker died", False)
    await until(lambda: gw.gateway.capacity() == capacity, 10)
    assert [e for e in gw.events if isinstance(e, CallEnded)] == [ended]
