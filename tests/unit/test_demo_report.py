"""The demo's pure parts: the prospect mix, the summary figures and the live board's bookkeeping."""

from __future__ import annotations

import io
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from rich.console import Console

from dialer.demo_board import Board
from dialer.demo_carrier import BUSY_THEN_ANSWER, NUMBER_PREFIX, demo_prospects
from dialer.demo_report import p95, render_summary, summarize
from dialer.outcome import Outcome
from dialer.ports import CallAnswered, CallEnded, CallRequest, CallRinging, DispatchObserver
from dialer.runtime import Watchers
from dialer.storage import AttemptRecord

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def attempt(outcome: Outcome, number: int = 1, *, talk: float = 0.0, pdd_ms: float | None = None) -> Any:
    values: dict[str, Any] = {f.name: None for f in fields(AttemptRecord)}
    values |= {
        "id": uuid4(),
        "attempt_number": number,
        "outcome": outcome,
        "invited_at": T0,
        "sip_code": 200,
        "duration_seconds": talk,
        "pdd_ms": pdd_ms,
    }
    return AttemptRecord(**values)


def test_prospects_are_unique_and_their_number_names_the_script() -> None:
    people = demo_prospects(40)
    assert len({p.phone for p in people}) == len({p.name for p in people}) == 40
    for person in people:
        assert person.phone.startswith(NUMBER_PREFIX + person.script.digit)
    assert sum(p.script is BUSY_THEN_ANSWER for p in people) == 8


def test_summary_figures() -> None:
    attempts = [
        attempt(Outcome.ANSWERED, talk=3.0, pdd_ms=500),
        attempt(Outcome.ANSWERED, 2, talk=5.0, pdd_ms=700),
        attempt(Outcome.BUSY),
        attempt(Outcome.NO_ANSWER, pdd_ms=300),
    ]
    summary = summarize(attempts, {"completed": 2, "failed": 1})
    assert (summary.seized, summary.answered, summary.asr) == (4, 2, 0.5)
    assert summary.acd_seconds == 4.0
    assert summary.pdd_mean_seconds == 0.5
    assert summary.pdd_p95_seconds == 0.7
    assert (summary.retries, summary.transfers) == (1, 0)
    assert summary.outcomes == {"answered": 2, "busy": 1, "no_answer": 1}
    assert summary.transfers_by == {}


def test_summary_counts_transfers_by_how_they_reached_the_human() -> None:
    refer, bridged, failed = (
        attempt(Outcome.TRANSFERRED),
        attempt(Outcome.TRANSFERRED),
        attempt(Outcome.ANSWERED),
    )
    refer = replace(refer, transfer_method="refer", transfer_result="completed")
    bridged = replace(bridged, transfer_method="bridge", transfer_result="bridged")
    failed = replace(
        failed, transfer_method="bridge", transfer_result="failed (REFER 603 Decline; bridge: busy)"
    )
    summary = summarize([refer, bridged, failed], {"completed": 3})
    assert (summary.transfers, summary.transfers_asked) == (2, 3)
    assert summary.transfers_by == {"refer": 1, "bridge": 1}
    text = render(render_summary(summary, 1.0))
    assert "transfers" in text and "2 of 3 asked for (bridge 1, refer 1)" in text
    assert p95([]) is None and p95([float(i) for i in range(1, 101)]) == 95.0


def request(attempt_id: UUID) -> CallRequest:
    return CallRequest(attempt_id, uuid4(), uuid4(), uuid4(), "+442079460900", "+442079460100", 4, 1,
                       prospect_name="Ada Archer", attempt_number=2)  # fmt: skip


def test_board_follows_calls_even_when_events_overtake_the_dispatcher() -> None:
    board = Board({"+442079460900": "London 1"}, total=2)
    first, second = uuid4(), uuid4()
    board.placed(request(first), 0.0)
    board.on_event(CallRinging(first, T0))
    assert (board.in_state("ringing"), board.live[first].did) == (1, "London 1")
    board.on_event(CallAnswered(first, T0))
    assert board.in_state("talking") == 1

    # The SIP layer answered and ended the second call before the dispatcher reported placing it.
    board.on_event(CallAnswered(second, T0))
    board.on_event(CallEnded(second, T0 + timedelta(seconds=1), 486, "Busy Here", confirmed=False))
    board.placed(request(second), 0.0)
    assert second not in board.live
    assert board.outcomes["busy"] == 1
    assert board.recent[0] == "Ada Archer (attempt 2): busy"
    assert "+44" not in board.line() and "2079460" not in board.line()


def test_board_names_outcomes_as_the_api_and_the_summary_do() -> None:
    board = Board({"+442079460900": "London 1"}, total=2)
    ends = {uuid4(): (603, "Decline"), uuid4(): (487, "Request Terminated")}
    for attempt_id, (code, reason) in ends.items():
        board.placed(request(attempt_id), 0.0)
        board.on_event(CallEnded(attempt_id, T0, code, reason, confirmed=False))
    assert dict(board.outcomes) == {Outcome.REJECTED.value: 1, Outcome.NO_ANSWER.value: 1}
    text = render(board.render())
    for name in ("rejected", "no_answer", "answered", "transferred", "busy", "completed", "failed"):
        assert name in text, text
    assert "declined" not in text and "reached" not in text
    assert "# a call holds a line" in text, "the DID lines gauge has its legend"
    assert "ended: no_answer 1, rejected 1" in board.line()


def render(renderable: Any) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_runtimes_watchers_pass_every_observer_call_on() -> None:
    heard: list[tuple[str, UUID]] = []

    class Ear(DispatchObserver):
        def deferred(self, campaign_id: UUID, reason: str) -> None:
            heard.append((reason, campaign_id))

        def lease_lost(self, campaign_id: UUID) -> None:
            heard.append(("lost", campaign_id))

    class Broken(DispatchObserver):
        def deferred(self, campaign_id: UUID, reason: str) -> None:
            raise RuntimeError("a watcher's bug")

    campaign = uuid4()
    watchers = Watchers(Ear())
    watchers.observers += [Broken(), Ear()]  # what Runtime.add_observer does
    watchers.deferred(campaign, "regional_hours")  # the broken watcher is logged, the others still hear
    watchers.lease_lost(campaign)
    assert heard == [("regional_hours", campaign)] * 2 + [("lost", campaign)] * 2
