"""baresip, a SIP phone that is neither SIPp nor pjsua, as the far end of real calls through the whole
runtime (SQLite, SIP workers, the reference voice worker over a real WebSocket).

Outbound: the campaign's trunk points at baresip, which answers by itself (``answermode=auto``) and
speaks a 700 Hz tone from a WAV file (``aufile``): the voice worker must hear that tone, and our
hang-up must end the call cleanly on both sides (baresip answers our BYE).

Inbound: baresip calls an imported number; the call reaches the number's agent, whose voice worker
hears baresip's tone, and ends cleanly when we hang up.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import AsyncIterator
from functools import partial
from itertools import pairwise
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
from sip.reference_worker import ReferenceWorker
from tests.sip.baresip_peer import RATE, TONE_HZ, Baresip
from tests.sip.peers import free_port, until
from tests.system_tools import needs

pytestmark = [pytest.mark.timeout(60), needs("baresip", "baresip-core")]

DID = "+442079460100"
CALLEE = "+442079460300"


def call_row(store: SqlStore, call_id: UUID) -> AttemptRecord:
    with store.engine.connect() as conn:
        return attempt_from_row(
            conn.execute(sa.select(attempts).where(attempts.c.id == call_id)).mappings().one()
        )


def ended_row(store: SqlStore, call_id: UUID) -> AttemptRecord | None:
    row = call_row(store, call_id)
    return row if row.ended_at is not None else None


def tone_seconds(pcm: bytes, hz: float) -> float:
    """How much of ``pcm`` (8 kHz, 16-bit) is a loud tone of ``hz``, judged 20 ms at a time by level and
    zero crossings (within a quarter of the tone's)."""
    frame, found = RATE // 50, 0
    samples = array("h", pcm[: len(pcm) - len(pcm) % 2])
    for at in range(0, len(samples) - frame + 1, frame):
        chunk = samples[at : at + frame]
        level = math.sqrt(sum(s * s for s in chunk) / frame)
        crossings = sum((a < 0) != (b < 0) for a, b in pairwise(chunk)) * 50
        found += level > 1000 and 0.75 * 2 * hz < crossings < 1.25 * 2 * hz
    return found / 50


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[Runtime, SqlStore]]:
    """A whole runtime; its first (only) SIP worker listens on ``runtime.settings.sip_port``."""
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(sip_port=free_port(), sip_rtp_port=free_port(40), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    await runtime.start()
    try:
        yield runtime, store
    finally:
        await runtime.stop()
        store.dispose()


async def test_baresip_answers_an_outbound_call_its_audio_reaches_the_worker_and_our_bye_ends_it(
    runtime: tuple[Runtime, SqlStore], tmp_path: Path
) -> None:
    dialer, store = runtime
    worker = ReferenceWorker(greeting_seconds=0.2)
    phone = Baresip(tmp_path, CALLEE).start()
    try:
        await phone.ready()
        tenant = await store.create_tenant("Acme Clinic", default_region="GB")
        agent = await store.create_agent(tenant, "Receptionist", await worker.start())
        trunk = await store.create_trunk(
            tenant, TrunkSpec(name="baresip", host="127.0.0.1", port=phone.port, max_cps=100)
        )
        did = await store.import_number(tenant, DID, trunk, country="GB")
        call = await store.create_call(tenant, DID, CALLEE, from_did_id=did, trunk_id=trunk, agent_id=agent)
        await dialer.single_calls.place(call)

        session = await until(lambda: next((s for s in worker.sessions if s.start), None), 20)
        await until(lambda: tone_seconds(bytes(session.heard), TONE_HZ) >= 1.0, 10)
        await dialer.hangup_call(tenant, call)
        ended = await until(partial(ended_row, store, call), 10)
        # The worker's stream is over: ``stop`` then the close (under heavy CPU load the gateway may
        # give up sending ``stop`` after its 1 s bound, sip/stream.py CLOSE_SECONDS, and just close).
        await until(lambda: session.stopped or session.closed, 5)
        await until(lambda: "terminated" in phone.log, 5)  # baresip took our BYE
    finally:
        await worker.stop()
        phone.kill()
        print(f"baresip's log:\n{phone.log[-3000:]}")  # shown when the test fails

    assert ended.outcome == "answered" and ended.sip_code == 200, ended
    assert ended.answered_at is not None and ended.worker_connected_at is not None
    assert session.start is not None and session.start["customParameters"]["to"] == CALLEE
    heard = tone_seconds(bytes(session.heard), TONE_HZ)
    print(f"worker heard {heard:.2f} s of baresip's {TONE_HZ} Hz; baresip's log ends: {phone.log[-300:]!r}")


async def test_baresip_calls_an_imported_number_and_reaches_its_voice_worker(
    runtime: tuple[Runtime, SqlStore], tmp_path: Path
) -> None:
    dialer, store = runtime
    worker = ReferenceWorker(greeting_seconds=0.2)
    number = "+442079460150"
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    trunk = await store.create_trunk(
        tenant, TrunkSpec(name="carrier", host="127.0.0.1", port=5060, max_cps=100)
    )
    did = await store.import_number(tenant, number, trunk, country="GB", agent_id=agent)
    await dialer.refresh_inbound()  # else the workers learn of the trunk and the number within 2 s
    phone = Baresip(tmp_path, "+442079460301")
    try:
        await phone.start(dial=f"sip:{number.lstrip('+')}@127.0.0.1:{dialer.settings.sip_port}").ready()
        session = await until(lambda: next((s for s in worker.sessions if s.start), None), 20)
        await until(lambda: tone_seconds(bytes(session.heard), TONE_HZ) >= 1.0, 10)
        calls, _total = await store.list_calls(tenant, direction="inbound")
        assert len(calls) == 1
        call = calls[0].attempt
        await dialer.hangup_call(tenant, call.id)
        ended = await until(partial(ended_row, store, call.id), 10)
        await until(lambda: "terminated" in phone.log, 5)
    finally:
        await worker.stop()
        phone.kill()
        print(f"baresip's log:\n{phone.log[-3000:]}")  # shown when the test fails

    assert (ended.direction, ended.from_did_id, ended.agent_id) == ("inbound", did, agent)
    assert ended.outcome == "answered" and ended.sip_code == 200, ended
    assert session.start is not None and session.start["customParameters"]["direction"] == "inbound"
