"""Inbound access through the whole runtime: only trunk sources are answered, a bad source gets 403
and an unknown number 404 from the SIP worker itself (no call record, a metric), and a trunk's
``inbound_cidrs`` admit another source."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import SqlStore
from dialer.storage.records import TrunkSpec
from dialer.storage.tables import attempts
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import free_port, until

pytestmark = pytest.mark.timeout(60)

IMPORTED = "+442079460150"
UNKNOWN = "+442079460999"
ELSEWHERE = "127.0.0.2"  # a loopback source that is no trunk's address


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    tenant: UUID
    trunk: UUID
    sip_port: int

    def call_rows(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(attempts)) or 0)

    def refused(self, reason: str) -> float:
        value = self.runtime.metrics.registry.get_sample_value
        return value("dialer_sip_inbound_refused_total", {"reason": reason}) or 0.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    port = free_port()
    settings = Settings(sip_port=port, sip_rtp_port=free_port(40), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="access-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    trunk = await store.create_trunk(tenant, TrunkSpec(name="carrier", host="127.0.0.1"))
    await store.import_number(tenant, IMPORTED, trunk, country="GB", agent_id=agent)
    await runtime.start()
    try:
        yield Stack(store, runtime, tenant, trunk, port)
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


async def test_a_source_that_is_no_trunk_gets_403_and_leaves_no_call(stack: Stack, sipp) -> None:
    target = f"127.0.0.1:{stack.sip_port}"
    caller = sipp("uac_refused", service=IMPORTED.lstrip("+"), target=target, local_ip=ELSEWHERE)
    assert await caller.finished() == 0
    assert "SIP/2.0 403" in caller.messages()
    await until(lambda: stack.refused("source") == 1, 5)
    assert stack.call_rows() == 0, "a refused INVITE is no call"
    assert stack.refused("unknown_number") == 0

    # The trunk's own address is answered as before.
    caller = sipp("uac_answer", service=IMPORTED.lstrip("+"), target=target)
    assert await caller.finished() == 0
    await until(lambda: stack.call_rows() == 1, 5)
    assert stack.refused("source") == 1

    exposition = generate_latest(stack.runtime.metrics.registry).decode()
    assert "dialer_sip_inbound_refused_total" in exposition
    assert "2079460150" not in exposition


async def test_an_unknown_number_gets_404_from_the_worker(stack: Stack, sipp) -> None:
    caller = sipp("uac_refused", service=UNKNOWN.lstrip("+"), target=f"127.0.0.1:{stack.sip_port}")
    assert await caller.finished() == 0
    assert "SIP/2.0 404" in caller.messages()
    await until(lambda: stack.refused("unknown_number") == 1, 5)
    assert stack.call_rows() == 0


async def test_a_trunks_inbound_cidrs_admit_another_source(stack: Stack, sipp) -> None:
    assert await stack.store.update_trunk(stack.tenant, stack.trunk, {"inbound_cidrs": ("127.0.0.0/30",)})
    await stack.runtime.refresh_inbound()
    caller = sipp(
        "uac_answer", service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{stack.sip_port}", local_ip=ELSEWHERE
    )
    assert await caller.finished() == 0
    await until(lambda: stack.call_rows() == 1, 5)
    assert stack.refused("source") == 0

    # Taken away again: the periodic refresh closes the door without a restart.
    assert await stack.store.update_trunk(stack.tenant, stack.trunk, {"inbound_cidrs": ()})
    await until(lambda: _policy_networks(stack) == ["127.0.0.1/32"], 5)
    caller = sipp(
        "uac_refused", service=IMPORTED.lstrip("+"), target=f"127.0.0.1:{stack.sip_port}", local_ip=ELSEWHERE
    )
    assert await caller.finished() == 0
    assert "SIP/2.0 403" in caller.messages()


def _policy_networks(stack: Stack) -> list[str] | None:
    policy = dataclasses.asdict(stack.runtime.gateway.inbound_policy())
    networks: list[str] | None = policy["networks"]
    return networks
