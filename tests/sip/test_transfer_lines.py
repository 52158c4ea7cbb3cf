"""A bridged transfer's human leg has a call slot: the worker's transfer lines, which no call takes.

The far end is the demo's pjsua2 carrier (sip/carrier_front.py): numbers of class 8 answer and stay
until our BYE and refuse a REFER with 603, and the human's leg through the same trunk is answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from dialer.demo_carrier import HUMAN_NUMBER, NUMBER_PREFIX, PjsuaCarrier
from dialer.ports import CallRequest, LauncherFull
from sip.events import BridgeEvent, TransferCompleted, TransferFailed
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import GatewayFactory, until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def worker() -> AsyncIterator[ReferenceWorker]:
    server = ReferenceWorker(greeting_seconds=0, echo=False)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def carrier(tmp_path: Path) -> Iterator[int]:
    far_end = PjsuaCarrier(tmp_path, [])
    port = far_end.start()
    yield port
    far_end.stop()


async def test_a_full_worker_still_bridges_a_human_in_its_transfer_line(
    gateway: GatewayFactory, worker: ReferenceWorker, carrier: int
) -> None:
    agent = uuid4()

    async def worker_urls(agent_id: UUID) -> str | None:
        return worker.url if agent_id == agent else None

    plain = await gateway()
    near = await gateway(worker_urls=worker_urls, transfer_lines=1)
    lines = near.gateway.capacity()
    assert lines == plain.gateway.capacity() - 1 >= 1, "the kept slot is no line for calls"
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    trunk = near.trunk(carrier)

    def call_to(i: int) -> CallRequest:
        return replace(near.request(trunk, to=f"{NUMBER_PREFIX}8{i:02d}"), agent_id=agent)

    calls = []
    for i in range(1, lines + 1):  # every line of the worker taken by an answered call
        request = call_to(i)
        await near.gateway.place(request)
        calls.append(request.attempt_id)
    await until(lambda: sum(1 for s in worker.sessions if s.start) == lines, 10)
    with pytest.raises(LauncherFull):
        await near.gateway.place(call_to(lines + 1))

    def settled(call: UUID) -> TransferCompleted | TransferFailed | None:
        kinds = TransferCompleted | TransferFailed
        return next((e for e in events if isinstance(e, kinds) and e.call_id == call), None)

    # The far end refuses the REFER (603): the bridge falls back to the slot kept for human legs.
    await near.gateway.transfer(calls[0], HUMAN_NUMBER, "auto")
    done = await until(lambda: settled(calls[0]), 10)
    assert isinstance(done, TransferCompleted) and (done.method, done.result) == ("bridge", "bridged"), done
    # A second human leg in the same worker has no slot left: it fails, the call stays with its worker.
    await near.gateway.transfer(calls[-1], HUMAN_NUMBER, "bridge")
    failed = await until(lambda: settled(calls[-1]), 10)
    assert isinstance(failed, TransferFailed) and failed.reason == "no free line for the human leg", failed
    assert near.gateway.live_attempts() == set(calls)
    for call in calls:
        await near.gateway.hangup(call)
    for call in calls:
        ended = await near.ended(call)
        assert ended.confirmed and ended.transferred == (call == calls[0])
