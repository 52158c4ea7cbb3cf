"""A flood of INVITEs no trunk should send (unknown numbers from the trunk, any number from elsewhere)
while real inbound calls are up: the SIP workers answer every one at once with 404/403, make no call
of them, and neither restart nor drop the calls in progress.

Before the screen (sip/screen.py) each flooding INVITE became a pjsua call whose RTP/RTCP sockets
filled the PyPI wheel's 64-handle media ioqueue within a second, and the worker aborted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa

from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import AttemptRecord, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts
from sip.launcher import process_cost
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import free_port, until

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

IMPORTED = "442079460150"
UNKNOWN = "442079460999"
FLOOD = 1500  # INVITEs per flooding caller: two of them, 3000 in all
RATE = 150  # per caller and second: the flood lasts ~10 s
QUIET = 3.0  # seconds of the two calls alone, for the workers' CPU without the flood
TALK_MS = 17_000  # the real calls outlast the quiet window and the flood


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    sip_port: int

    def calls(self) -> list[AttemptRecord]:
        with self.store.engine.connect() as conn:
            return [attempt_from_row(row) for row in conn.execute(sa.select(attempts)).mappings()]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    port = free_port(2)
    settings = Settings(sip_port=port, sip_workers=2, sip_rtp_port=free_port(80), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="flood-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant: UUID = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    trunk = await store.create_trunk(tenant, TrunkSpec(name="carrier", host="127.0.0.1"))
    await store.import_number(tenant, f"+{IMPORTED}", trunk, country="GB", agent_id=agent)
    await runtime.start()
    try:
        yield Stack(store, runtime, port)
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


async def test_a_flood_of_refused_invites_restarts_no_worker_and_drops_no_call(stack: Stack, sipp) -> None:
    gateway = stack.runtime.gateway
    pids = gateway.workers()
    talkers = [
        sipp("uac_talk", service=IMPORTED, target=f"127.0.0.1:{port}", extra=("-d", str(TALK_MS)))
        for port in (stack.sip_port, stack.sip_port + 1)
    ]
    up = await until(lambda: [c for c in stack.calls() if c.answered_at is not None] if len(
        [c for c in stack.calls() if c.answered_at is not None]) == 2 else None, 10)  # fmt: skip

    def worker_cpu() -> float:
        return sum(process_cost(pid)[0] for pid in pids.values() if pid)

    quiet_from = worker_cpu()
    await asyncio.sleep(QUIET)
    cpu_before = worker_cpu()
    quiet_share = (cpu_before - quiet_from) / QUIET

    started = time.monotonic()
    floods = [
        # Unknown numbers from the trunk's own address: 404.
        sipp("uac_refused", service=UNKNOWN, target=f"127.0.0.1:{stack.sip_port}", calls=FLOOD, rate=RATE),
        # The imported number from an address that is no trunk's: 403.
        sipp("uac_refused", service=IMPORTED, target=f"127.0.0.1:{stack.sip_port + 1}", calls=FLOOD,
             rate=RATE, local_ip="127.0.0.2"),
    ]  # fmt: skip
    codes = [await flood.finished(within=40) for flood in floods]
    elapsed = time.monotonic() - started
    cpu = worker_cpu() - cpu_before
    assert codes == [0, 0], "every flooding INVITE was answered as expected"
    answered_404 = floods[0].messages().count("SIP/2.0 404 ")
    answered_403 = floods[1].messages().count("SIP/2.0 403 ")
    assert answered_404 >= FLOOD and answered_403 >= FLOOD

    metric = stack.runtime.metrics.registry.get_sample_value
    await until(
        lambda: (
            metric("dialer_sip_inbound_refused_total", {"reason": "unknown_number"}) == FLOOD
            and metric("dialer_sip_inbound_refused_total", {"reason": "source"}) == FLOOD
        ),
        5,
    )
    assert gateway.workers() == pids, "no SIP worker restarted"
    assert all(call.ended_at is None for call in stack.calls()), "the real calls are still up"

    assert [await talker.finished(within=TALK_MS / 1000 + 10) for talker in talkers] == [0, 0]
    ended = await until(lambda: [c for c in stack.calls() if c.ended_at is not None] if len(
        [c for c in stack.calls() if c.ended_at is not None]) == 2 else None, 10)  # fmt: skip
    assert len(stack.calls()) == 2, "the flood left no call record"
    assert {c.id for c in ended} == {c.id for c in up}
    assert all(c.outcome == "answered" and c.sip_code == 200 for c in ended), [
        (c.outcome, c.reason) for c in ended
    ]
    assert gateway.workers() == pids
    print(
        f"\nflood: {2 * FLOOD} INVITEs in {elapsed:.1f} s ({2 * FLOOD / elapsed:.0f}/s); "
        f"404 responses {answered_404}, 403 responses {answered_403}; worker restarts 0; "
        f"SIP worker CPU {cpu:.2f} s ({100 * cpu / elapsed:.0f}% of a core over the flood, "
        f"{100 * quiet_share:.0f}% with the two calls alone); "
        f"calls up through it: {len(up)}, dropped 0"
    )
