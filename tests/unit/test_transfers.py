"""The transfer list of a call (dialer/transfers.py): pure, on literal times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialer import transfers

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_pending_transfer_settles_in_place_keeping_its_target_and_request_time() -> None:
    log = transfers.started(None, "+15550100042", "auto", T0)
    assert log == [
        {"to": "+15550100042", "method": "auto", "result": "pending", "sip_code": None,
         "started_at": T0.isoformat(), "ended_at": None}
    ]  # fmt: skip
    done = transfers.settled(
        log,
        to=None,
        method="bridge",
        result="bridged",
        sip_code=200,
        started_at=T0 + timedelta(seconds=1),  # when the SIP worker began: later than the request
        ended_at=T0 + timedelta(seconds=4),
    )
    assert done == [
        {"to": "+15550100042", "method": "bridge", "result": "bridged", "sip_code": 200,
         "started_at": T0.isoformat(), "ended_at": (T0 + timedelta(seconds=4)).isoformat()}
    ]  # fmt: skip
    assert log[0]["result"] == "pending", "the list given is not changed"


def test_a_settled_transfer_with_none_pending_is_added_after_the_others() -> None:
    first = transfers.settled(
        None, to=None, method="refer", result="failed (declined)", sip_code=603, started_at=T0, ended_at=T0
    )
    later = T0 + timedelta(minutes=1)
    both = transfers.settled(
        first,
        to=None,
        method="inbound_refer",
        result="completed",
        sip_code=200,
        started_at=later,
        ended_at=later,
    )
    assert [t["result"] for t in both] == ["failed (declined)", "completed"]
    assert both[0] == first[0] and both[1]["started_at"] == later.isoformat()
    again = transfers.started(both, "+15550100043", "refer", later)
    assert len(again) == 3 and again[-1]["result"] == transfers.PENDING and again[:2] == both
