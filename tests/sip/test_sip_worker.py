"""SIP-URI voice workers against real peers: a second SIP leg from the gateway, joined in pjsua's bridge.

The callee and the worker are other gateways' pjsua2 workers answering imported numbers (they play a
WAV tone into the call and record what they hear), or SIPp scenarios checking the worker leg's
headers, refusing it, hanging it up or sending REFER. Frequencies are found with a Goertzel filter.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.ports import CallAnswered, CallEnded, CallRequest, LauncherFull
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import AttemptRecord, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts
from sip.audio import RATE, level, tone
from sip.events import (
    BridgeEvent,
    HangupRequested,
    InboundAnswered,
    InboundOffered,
    InboundRoute,
    TransferRequested,
)
from sip.reference_worker import ReferenceWorker
from sip.stream import WORKER_HANGUP, WORKER_UNREACHABLE
from tests.sip.peers import DID, GatewayFactory, Harness, Sipp, free_port, until
from tests.sip.transfer_peers import HUMAN, fill, human, notify, takes_refer

pytestmark = pytest.mark.timeout(60)

NUMBER = "+14155550199"  # the callee's number (outbound) or our imported number (inbound)
BOT = "bot"  # the user part of the worker's SIP URI

# How the ``sip_worker_refer`` SIPp worker's leg ends after its REFER was answered 603.
WAITS_FOR_BYE = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"""
LEAVES = """  <send retrans="500">
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to]
      To: [$their_from]
      [last_Call-ID:]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>"""


def refer_fill(did: str, end: str = WAITS_FOR_BYE) -> dict[str, str]:
    """The ``fill`` of the ``sip_worker_refer`` scenario: From ``did``, REFER to HUMAN, then ``end``."""
    return {"FROM": did.lstrip("+"), "TARGET": HUMAN, "END": end}


def write_wav(path: Path, pcm: bytes) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return str(path)


async def loud_windows(path: Path, hz: float, within: float = 5.0) -> list[float]:
    """``level`` at ``hz`` of each 0.2 s window of a pjsua recording, once its recorder was destroyed."""

    def windows() -> list[float] | None:
        try:
            with wave.open(str(path), "rb") as wav:
                rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
        except (OSError, EOFError, wave.Error):
            return None
        size = int(rate * 0.2) * 2
        return [level(pcm[at : at + size], hz, rate) for at in range(0, len(pcm) - size + 1, size)] or None

    found: list[float] = await until(windows, within)
    return found


def sip_worker(agent: UUID, url: str) -> Callable[[UUID], Any]:
    async def worker_urls(agent_id: UUID) -> str | None:
        return url if agent_id == agent else None

    return worker_urls


async def call_through_sip_worker(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker_uri: str
) -> tuple[Harness, list[BridgeEvent], Sipp, CallRequest]:
    """A near gateway whose agent's worker is ``worker_uri`` places a call to a SIPp callee that answers."""
    agent = uuid4()
    near = await gateway(worker_urls=sip_worker(agent, worker_uri))
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    callee = sipp("answer")
    request = replace(near.request(near.trunk(callee.port)), agent_id=agent)
    await near.gateway.place(request)
    return near, events, callee, request


@dataclass
class ThreeWay:
    """A near gateway bridging a call between a pjsua2 ``far`` end and a pjsua2 ``bot`` SIP worker."""

    near: Harness
    far: Harness
    bot: Harness
    bridge_events: list[BridgeEvent]

    async def answered(self, harness: Harness) -> InboundAnswered:
        found: InboundAnswered = await until(
            lambda: next((e for e in harness.inbound if isinstance(e, InboundAnswered)), None), 5
        )
        return found

    def offered(self, harness: Harness) -> InboundOffered:
        return next(e for e in harness.inbound if isinstance(e, InboundOffered))


async def three_way(gateway: GatewayFactory) -> ThreeWay:
    """Far and bot answer calls to their numbers; the near gateway's agent's worker is the bot."""
    far = await gateway()
    far.routes[NUMBER] = InboundRoute(uuid4(), uuid4(), uuid4())
    bot = await gateway()
    bot.routes[BOT] = InboundRoute(uuid4(), uuid4(), uuid4())
    agent = uuid4()
    near = await gateway(worker_urls=sip_worker(agent, f"sip:{BOT}@127.0.0.1:{bot.port}"))
    near.routes[NUMBER] = InboundRoute(agent, uuid4(), uuid4())  # for calls into the near gateway
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    return ThreeWay(near, far, bot, events)


async def test_outbound_call_is_bridged_to_a_sip_worker_both_ways(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    call = await three_way(gateway)
    agent = next(iter(call.near.routes.values())).agent_id
    request = replace(
        call.near.request(call.near.trunk(call.far.port), to=NUMBER),
        agent_id=agent,
        prospect_id=uuid4(),
        prospect_name="Ada Lovelace",
    )
    full = call.near.gateway.capacity()
    await call.near.gateway.place(request)
    callee = await call.answered(call.far)
    worker = await call.answered(call.bot)
    answered = next(e for e in call.near.events if isinstance(e, CallAnswered))
    offered = call.offered(call.bot)
    assert (offered.called, offered.caller) == (BOT, DID), "From is the DID, straight to the worker's URI"
    assert call.near.gateway.capacity() == full - 1, "the worker leg's slot is no line for another call"

    far_wav, bot_wav = tmp_path / "far.wav", tmp_path / "bot.wav"
    assert call.far.gateway.record(callee.call_id, str(far_wav))
    assert call.bot.gateway.record(worker.call_id, str(bot_wav))
    assert call.far.gateway.play(callee.call_id, write_wav(tmp_path / "a440.wav", tone(440, 2.0)))
    assert call.bot.gateway.play(worker.call_id, write_wav(tmp_path / "a1k.wav", tone(1000, 2.0)))
    await asyncio.sleep(2.5)
    await call.near.gateway.hangup(request.attempt_id)
    ended = await call.near.ended(request.attempt_id)
    assert ended.confirmed and not ended.transferred
    assert (await call.bot.inbound_ended()).confirmed, "the worker's leg got our BYE"
    assert (await call.far.inbound_ended()).confirmed

    heard_by_bot = await loud_windows(bot_wav, 440)
    assert len([x for x in heard_by_bot if x > 0.3]) >= 8, heard_by_bot  # 1.6 s of the callee's tone
    assert max(await loud_windows(bot_wav, 1000)) < 0.05, "the worker does not hear itself"
    heard_by_far = await loud_windows(far_wav, 1000)
    assert len([x for x in heard_by_far if x > 0.3]) >= 8, heard_by_far  # and the worker's tone back
    assert max(await loud_windows(far_wav, 440)) < 0.05

    connected = next(e for e in call.bridge_events if type(e).__name__ == "WorkerConnected")
    assert connected.call_id == request.attempt_id
    setup = (worker.at - answered.at).total_seconds() * 1000
    print(f"worker leg: callee answer → worker answer {setup:.1f} ms; worker heard 440 Hz at "
          f"{max(heard_by_bot):.2f}, callee heard 1 kHz at {max(heard_by_far):.2f}")  # fmt: skip


async def test_inbound_call_on_an_imported_number_is_bridged_to_its_sip_worker(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    call = await three_way(gateway)
    caller = call.far  # it dials the near gateway's imported number
    request = caller.request(caller.trunk(call.near.port), to=NUMBER)
    await caller.gateway.place(request)
    worker = await call.answered(call.bot)
    offered = call.offered(call.bot)
    assert offered.caller == NUMBER, "From is the number that was called"
    await until(lambda: any(isinstance(e, CallAnswered) for e in caller.events), 5)
    bot_wav = tmp_path / "bot.wav"
    assert call.bot.gateway.record(worker.call_id, str(bot_wav))
    assert caller.gateway.play(request.attempt_id, write_wav(tmp_path / "a440.wav", tone(440, 1.5)))
    await asyncio.sleep(2.0)
    await caller.gateway.hangup(request.attempt_id)  # the caller leaves: the worker's leg gets BYE
    assert (await caller.ended(request.attempt_id)).confirmed
    near_ended = await call.near.inbound_ended()
    assert near_ended.confirmed and near_ended.route is not None
    assert (await call.bot.inbound_ended()).confirmed
    heard = await loud_windows(bot_wav, 440)
    assert len([x for x in heard if x > 0.3]) >= 5, heard


async def test_dtmf_is_relayed_both_ways(gateway: GatewayFactory) -> None:
    """Callee and SIP worker are gateways streaming to WebSocket reference workers, which log digits."""
    ears = [ReferenceWorker(greeting_seconds=0, echo=False) for _ in range(2)]
    urls = [await ear.start() for ear in ears]
    try:
        far_agent, bot_agent, agent = uuid4(), uuid4(), uuid4()
        far = await gateway(worker_urls=sip_worker(far_agent, urls[0]))
        far.routes[NUMBER] = InboundRoute(far_agent, uuid4(), uuid4())
        bot = await gateway(worker_urls=sip_worker(bot_agent, urls[1]))
        bot.routes[BOT] = InboundRoute(bot_agent, uuid4(), uuid4())
        near = await gateway(worker_urls=sip_worker(agent, f"sip:{BOT}@127.0.0.1:{bot.port}"))
        request = replace(near.request(near.trunk(far.port), to=NUMBER), agent_id=agent)
        await near.gateway.place(request)
        sessions = [await until(lambda ear=ear: next(iter(ear.sessions), None), 5) for ear in ears]
        callee = next(e for e in far.inbound if isinstance(e, InboundOffered))
        worker = next(e for e in bot.inbound if isinstance(e, InboundOffered))
        assert far.gateway.send_dtmf(callee.call_id, "5")  # the callee presses 5: the worker hears it
        assert bot.gateway.send_dtmf(worker.call_id, "7")  # the worker sends 7: the callee gets it
        await until(lambda: sessions[1].digits == ["5"] and sessions[0].digits == ["7"], 5)
        await near.gateway.hangup(request.attempt_id)
        assert (await near.ended(request.attempt_id)).confirmed
    finally:
        for ear in ears:
            await ear.stop()


@pytest.mark.parametrize("worker", ["busy", "unreachable", "unreachable-tcp"])
async def test_refused_or_unreachable_worker_hangs_up_the_callee_within_2_s(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker: str
) -> None:
    if worker == "busy":
        bot = sipp(
            "reject", keys={"reason_line": "X-Note: none"}, fill={"CODE": "486", "PHRASE": "Busy Here"}
        )
        port = bot.port
    else:
        port = free_port()  # nothing listens there: no answer at all (UDP), or a refused connection (TCP)
    params = ";transport=tcp" if worker.endswith("tcp") else ""
    near, events, callee, request = await call_through_sip_worker(
        gateway, sipp, f"sip:{BOT}@127.0.0.1:{port}{params}"
    )
    ended = await near.ended(request.attempt_id, within=5)
    answered = next(e for e in near.events if isinstance(e, CallAnswered))
    delay = (ended.at - answered.at).total_seconds()
    assert ended.confirmed and ended.reason is not None and WORKER_UNREACHABLE in ended.reason
    expected = {"busy": "SIP 486", "unreachable": "no answer in", "unreachable-tcp": "SIP 503"}[worker]
    assert expected in ended.reason, ended.reason
    # `within=5` bounds it: the 1.5 s budget hangs up, not the far end's own 32 s timers (no timing assertion)
    assert await callee.finished() == 0, "the callee got our BYE"
    if worker == "busy":
        assert await bot.finished() == 0
    missing = next(e for e in events if type(e).__name__ == "WorkerMissing")
    assert missing.call_id == request.attempt_id
    print(f"{worker} SIP worker: callee hung up {delay * 1000:.0f} ms after its answer ({ended.reason})")


async def test_a_worker_that_sent_100_trying_may_answer_later(
    gateway: GatewayFactory, sipp: Callable[..., Sipp]
) -> None:
    bot = sipp("sip_worker_slow")  # 100 Trying at once, 200 OK 2 s later
    near, events, callee, request = await call_through_sip_worker(
        gateway, sipp, f"sip:{BOT}@127.0.0.1:{bot.port}"
    )
    connected = await until(
        lambda: next((e for e in events if type(e).__name__ == "WorkerConnected"), None), 5
    )
    assert near.gateway.live_attempts() == {request.attempt_id}, (
        "not hung up at the 1.5 s a silent worker gets"
    )
    await near.gateway.hangup(request.attempt_id)
    ended = await near.ended(request.attempt_id)
    assert ended.confirmed and ended.reason is not None and WORKER_UNREACHABLE not in ended.reason
    assert await callee.finished() == 0 and await bot.finished() == 0
    print(
        f"slow worker joined {(connected.at - connected.answered_at).total_seconds():.2f} s after the answer"
    )


async def test_worker_bye_hangs_up_the_callee(gateway: GatewayFactory, sipp: Callable[..., Sipp]) -> None:
    bot = sipp("answer_bye")  # answers, then hangs up itself after 300 ms
    near, events, callee, request = await call_through_sip_worker(
        gateway, sipp, f"sip:{BOT}@127.0.0.1:{bot.port}"
    )
    ended = await near.ended(request.attempt_id, within=5)
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_HANGUP})")
    assert [e.call_id for e in events if isinstance(e, HangupRequested)] == [request.attempt_id]
    assert await callee.finished() == 0 and await bot.finished() == 0


async def test_a_call_to_a_sip_worker_needs_two_call_slots(
    gateway: GatewayFactory, sipp: Callable[..., Sipp]
) -> None:
    bot = sipp("sip_worker_answer", calls=2)
    callee = sipp("answer", calls=2)
    agent = uuid4()
    near = await gateway(
        worker_urls=sip_worker(agent, f"sip:{BOT}@127.0.0.1:{bot.port}"), max_calls_per_worker=4
    )
    assert near.gateway.capacity() == 4
    trunk = near.trunk(callee.port)
    placed: list[CallRequest] = []
    for _ in range(2):
        request = replace(near.request(trunk), agent_id=agent)
        await near.gateway.place(request)
        placed.append(request)
    await until(lambda: len([e for e in near.events if isinstance(e, CallAnswered)]) == 2, 5)
    assert near.gateway.capacity() == 2, "each call holds its worker leg's slot too"
    with pytest.raises(LauncherFull):  # two slots are free in pjsua, but both are held for the legs
        await near.gateway.place(replace(near.request(trunk), agent_id=agent))
    with pytest.raises(LauncherFull):
        await near.gateway.place(near.request(trunk))  # not even a call with no worker
    for request in placed:
        await near.gateway.hangup(request.attempt_id)
        assert (await near.ended(request.attempt_id)).confirmed
    assert near.gateway.capacity() == 4
    assert await callee.finished() == 0 and await bot.finished() == 0


# ---- the whole runtime: a SIP worker that REFERs the callee ----------------------------------------

DIDS = ("+442079460100",)


def rows(store: SqlStore) -> list[AttemptRecord]:
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(attempts).order_by(attempts.c.created_at)).mappings()
        return [attempt_from_row(row) for row in found]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[Runtime, SqlStore, UUID]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(
        sip_port=free_port(),
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        dispatch_tick_seconds=0.2,
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    await runtime.start()
    try:
        yield runtime, store, tenant
    finally:
        await runtime.stop()
        store.dispose()


@pytest.mark.parametrize("trunk_refer", ["accepted", "refused"])
async def test_a_sip_worker_that_sends_refer_transfers_the_callee(
    runtime: tuple[Runtime, SqlStore, UUID], sipp: Callable[..., Sipp], trunk_refer: str
) -> None:
    """The worker REFERs; the callee's trunk takes the REFER (202, NOTIFY 100 and 200), or refuses it
    (603) and the human is dialled and bridged instead. Either way the worker's leg gets BYE."""
    dialer, store, tenant = runtime
    bot = sipp("sip_worker_refer", fill=refer_fill(DIDS[0]))
    agent = await store.create_agent(tenant, "SIP bot", f"sip:{BOT}@127.0.0.1:{bot.port}")
    if trunk_refer == "accepted":
        notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
        scenario = fill(takes_refer(r"sip:[+]14155550142@", "202 Accepted", notifies))
    else:
        scenario = fill(takes_refer(r"sip:[+]14155550142@", "603 Decline"), human("answer"))
    callee = sipp("refer_trunk", fill=scenario, calls=1 if trunk_refer == "accepted" else 2)
    trunk = await store.create_trunk(
        tenant, TrunkSpec(name="t", host="127.0.0.1", port=callee.port, max_cps=100)
    )
    did = await store.import_number(tenant, DIDS[0], trunk, country="GB")
    call = await store.create_call(
        tenant, DIDS[0], "+442079460300", from_did_id=did, trunk_id=trunk, agent_id=agent
    )
    await dialer.single_calls.place(call)
    settled: AttemptRecord = await until(
        lambda: next(
            (r for r in rows(store) if r.id == call and r.transfer_result not in (None, "pending")), None
        ),
        15,
    )
    assert await bot.finished() == 0, "the worker's REFER was answered 603 and its leg got BYE"
    assert "SIP/2.0 603" in bot.messages()
    if trunk_refer == "refused":
        assert settled.transfer_result == "bridged" and settled.ended_at is None, (
            "the callee talks to the human"
        )
        await dialer.hangup_call(tenant, call)
    row = await until(lambda: next((r for r in rows(store) if r.id == call and r.ended_at), None), 10)
    method, result = ("refer", "completed") if trunk_refer == "accepted" else ("bridge", "bridged")
    assert (row.outcome, row.transfer_to, row.transfer_method, row.transfer_result) == (
        "transferred",
        HUMAN,
        method,
        result,
    )
    assert await callee.finished() == 0, "the callee got REFER to the worker's Refer-To, then our BYE"


async def test_worker_refer_reaches_the_gateway_as_a_transfer_request(
    gateway: GatewayFactory, sipp: Callable[..., Sipp]
) -> None:
    """Without a runtime nothing acts on the request: the worker's leg stays joined until the call ends."""
    bot = sipp("sip_worker_refer", fill=refer_fill(DID))
    near, events, callee, request = await call_through_sip_worker(
        gateway, sipp, f"sip:{BOT}@127.0.0.1:{bot.port}"
    )
    asked = await until(lambda: next((e for e in events if isinstance(e, TransferRequested)), None), 5)
    assert (asked.call_id, asked.to, asked.mode, asked.inbound) == (request.attempt_id, HUMAN, "auto", False)
    assert near.gateway.live_attempts() == {request.attempt_id}, "a transfer request alone ends nothing"
    await near.gateway.hangup(request.attempt_id)
    ended: CallEnded = await near.ended(request.attempt_id)
    assert ended.confirmed and not ended.transferred
    assert await callee.finished() == 0 and await bot.finished() == 0


async def test_a_worker_gone_after_its_refer_ends_the_call_when_no_transfer_comes(
    gateway: GatewayFactory, sipp: Callable[..., Sipp]
) -> None:
    """The worker REFERs and hangs up; nothing starts the transfer (no runtime): after the grace
    period the callee is hung up rather than left in dead air."""
    bot = sipp("sip_worker_refer", fill=refer_fill(DID, LEAVES))
    near, events, callee, request = await call_through_sip_worker(
        gateway, sipp, f"sip:{BOT}@127.0.0.1:{bot.port}"
    )
    await until(lambda: next((e for e in events if isinstance(e, TransferRequested)), None), 5)
    assert await bot.finished() == 0, "the worker left"
    assert near.gateway.live_attempts() == {request.attempt_id}, "its transfer may still come"
    ended = await near.ended(request.attempt_id, within=5)
    assert ended.confirmed and ended.reason is not None and ended.reason.endswith(f"({WORKER_HANGUP})")
    assert await callee.finished() == 0


async def test_a_worker_gone_after_its_refer_still_gets_the_callee_transferred(
    runtime: tuple[Runtime, SqlStore, UUID], sipp: Callable[..., Sipp]
) -> None:
    dialer, store, tenant = runtime
    bot = sipp("sip_worker_refer", fill=refer_fill(DIDS[0], LEAVES))
    agent = await store.create_agent(tenant, "SIP bot", f"sip:{BOT}@127.0.0.1:{bot.port}")
    notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
    callee = sipp("refer_trunk", fill=fill(takes_refer(r"sip:[+]14155550142@", "202 Accepted", notifies)))
    trunk = await store.create_trunk(
        tenant, TrunkSpec(name="t", host="127.0.0.1", port=callee.port, max_cps=100)
    )
    did = await store.import_number(tenant, DIDS[0], trunk, country="GB")
    call = await store.create_call(
        tenant, DIDS[0], "+442079460300", from_did_id=did, trunk_id=trunk, agent_id=agent
    )
    await dialer.single_calls.place(call)
    row = await until(lambda: next((r for r in rows(store) if r.id == call and r.ended_at), None), 10)
    await until(
        lambda: next((r for r in rows(store) if r.id == call and r.transfer_result == "completed"), None), 5
    )
    assert row.outcome == "transferred"
    assert await callee.finished() == 0 and await bot.finished() == 0
