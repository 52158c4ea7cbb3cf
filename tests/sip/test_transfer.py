"""Human transfers against real SIPp trunks: REFER, the bridged fallback, REFERs from the far end.

One SIPp process is the trunk for both legs (``refer_trunk.xml``): the callee's INVITE and, for a
bridged transfer, the human's INVITE through the same trunk. The gateway streams the callee to a
``ReferenceWorker``, whose sessions record every event (``stop``, ``transfer_failed``). A REFER refused
with 405, 603 or a NOTIFY's 486, with the human on another UAS behind a carrier edge proxy and audio on
the bridged legs, is in test_transfer_edge.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

import pytest

from dialer.ports import CallEnded
from sip.events import BridgeEvent, ReferFromFarEnd, TransferCompleted, TransferFailed, TransferProgress
from sip.reference_worker import ReferenceWorker, WorkerSession
from tests.sip.peers import GatewayFactory, Harness, Sipp, until
from tests.sip.transfer_peers import HUMAN, fill, human, notify, sends_refer, takes_refer

pytestmark = pytest.mark.timeout(60)

SIP_REFER_TO = r"sip:[+]14155550142@127[.]0[.]0[.]1"


@pytest.fixture
async def worker() -> AsyncIterator[ReferenceWorker]:
    server = ReferenceWorker(greeting_seconds=0, echo=False, transfer_to=HUMAN)
    await server.start()
    yield server
    await server.stop()


@dataclass
class Call:
    near: Harness
    peer: Sipp
    attempt: UUID
    events: list[BridgeEvent]
    session: WorkerSession

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def settled(self, within: float = 10.0) -> TransferCompleted | TransferFailed:
        done: TransferCompleted | TransferFailed = await until(
            lambda: next((e for e in self.events if isinstance(e, TransferCompleted | TransferFailed)), None),
            within,
        )
        return done

    async def ended(self, within: float = 10.0) -> CallEnded:
        return await self.near.ended(self.attempt, within)


async def answered_call(
    gateway: GatewayFactory,
    sipp: Callable[..., Sipp],
    worker: ReferenceWorker,
    scenario: dict[str, str],
    calls: int = 1,
    trunk: dict[str, Any] | None = None,
    **gateway_kwargs: Any,
) -> Call:
    """A call answered by the ``refer_trunk`` SIPp and streamed to ``worker``."""
    agent = uuid4()

    async def worker_urls(agent_id: UUID) -> str | None:
        return worker.url if agent_id == agent else None

    near = await gateway(worker_urls=worker_urls, **gateway_kwargs)
    events: list[BridgeEvent] = []
    near.gateway.on_bridge = events.append
    peer = sipp("refer_trunk", calls=calls, fill=scenario)
    request = replace(near.request(near.trunk(peer.port, **(trunk or {}))), agent_id=agent)
    await near.gateway.place(request)
    await until(lambda: request.attempt_id in near.gateway.live_attempts() and near.events, 5)
    session: WorkerSession = await until(lambda: next((s for s in worker.sessions if s.start), None), 5)
    return Call(near, peer, request.attempt_id, events, session)


@pytest.mark.parametrize("style", ["sip", "tel"])
async def test_refer_accepted_ends_our_side_as_transferred(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker: ReferenceWorker, style: str
) -> None:
    notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
    refer_to = SIP_REFER_TO if style == "sip" else r"tel:[+]14155550142"
    call = await answered_call(
        gateway,
        sipp,
        worker,
        fill(takes_refer(refer_to, "202 Accepted", notifies)),
        trunk={"refer_uri_style": style},
    )
    sent = time.monotonic()
    await call.near.gateway.transfer(call.attempt, HUMAN, "refer")
    done = await call.settled()
    ended = await call.ended()
    took = time.monotonic() - sent
    assert isinstance(done, TransferCompleted) and (done.method, done.result, done.sip_code) == (
        "refer",
        "completed",
        200,
    )
    codes = [(p.sip_code, p.final) for p in call.of(TransferProgress)]
    assert codes == [(100, False), (100, False), (200, True)], codes
    assert ended.transferred and ended.confirmed and ended.reason is not None
    assert ended.reason.endswith("(transferred)")
    assert await call.peer.finished() == 0, "SIPp saw REFER, sent its NOTIFYs and got our BYE"
    await until(lambda: call.session.stopped, 3)
    print(
        f"REFER → final NOTIFY {(done.at - done.started_at).total_seconds() * 1000:.0f} ms; "
        f"BYE within {took * 1000:.0f} ms"
    )


async def test_no_notify_falls_back_after_the_timeout(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker: ReferenceWorker
) -> None:
    scenario = fill(takes_refer(SIP_REFER_TO, "202 Accepted"), human("answer"))
    call = await answered_call(gateway, sipp, worker, scenario, calls=2, refer_timeout=1.0)
    await call.near.gateway.transfer(call.attempt, HUMAN)
    done = await call.settled()
    assert isinstance(done, TransferCompleted) and done.result == "bridged"
    timeout = next(p for p in call.of(TransferProgress) if p.method == "refer" and p.final)
    fallback = (timeout.at - done.started_at).total_seconds()
    assert timeout.sip_code == 408 and 0.9 < fallback < 1.5, fallback
    await call.near.gateway.hangup(call.attempt)
    assert (await call.ended()).transferred
    assert await call.peer.finished() == 0
    print(f"no NOTIFY: fell back after {fallback * 1000:.0f} ms; human bridged "
          f"{(done.at - timeout.at).total_seconds() * 1000:.0f} ms later")  # fmt: skip


@pytest.mark.parametrize("kind", ["ring", "busy"])
async def test_human_who_does_not_answer_returns_the_call_to_its_worker(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker: ReferenceWorker, kind: str
) -> None:
    from tests.sip.transfer_peers import waits_for_bye

    scenario = fill(waits_for_bye(), human(kind))
    call = await answered_call(gateway, sipp, worker, scenario, calls=2, transfer_ring_seconds=1.0)
    await call.session.send_transfer(HUMAN, "bridge")  # the worker asks; the test plays the runtime
    request = await until(lambda: next((e for e in call.events if hasattr(e, "to")), None), 5)
    await call.near.gateway.transfer(call.attempt, request.to, request.mode)
    done = await call.settled()
    assert isinstance(done, TransferFailed) and done.method == "bridge"
    assert done.sip_code == (487 if kind == "ring" else 486), done
    failed = await until(
        lambda: next((e for e in call.session.events if e["event"] == "transfer_failed"), None), 3
    )
    assert failed["transfer_failed"]["code"] == done.sip_code
    assert HUMAN.lstrip("+") not in str(failed)
    assert call.near.gateway.live_attempts() == {call.attempt} and not call.session.stopped
    await until(lambda: call.session.media_frames > 0, 2)
    await call.near.gateway.hangup(call.attempt)
    ended = await call.ended()
    assert ended.confirmed and not ended.transferred
    assert await call.peer.finished() == 0


@pytest.mark.parametrize("accept", [False, True])
async def test_refer_from_the_far_end_follows_the_trunk_setting(
    gateway: GatewayFactory, sipp: Callable[..., Sipp], worker: ReferenceWorker, accept: bool
) -> None:
    scenario = fill(sends_refer(accept), human("answer") if accept else "")
    call = await answered_call(
        gateway, sipp, worker, scenario, calls=2 if accept else 1, trunk={"accept_inbound_refer": accept}
    )
    refer = await until(lambda: next(iter(call.of(ReferFromFarEnd)), None), 5)
    assert refer.accepted is accept and refer.call_id == call.attempt
    if accept:
        done = await call.settled()
        assert isinstance(done, TransferCompleted) and done.method == "inbound_refer"
        await until(lambda: "BYE" in call.peer.messages(), 5)  # the PBX left its leg
    else:
        await until(lambda: "SIP/2.0 603" in call.peer.messages(), 5)
    await until(lambda: call.session.media_frames > 0, 2)
    assert call.near.gateway.live_attempts() == {call.attempt} and not call.session.stopped
    await call.near.gateway.hangup(call.attempt)
    assert (await call.ended()).confirmed
    assert await call.peer.finished() == 0
