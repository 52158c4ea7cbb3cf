"""The abandonment rule (an answered call with no voice worker within 2 s) and its two counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.metrics import ABANDON_SECONDS, Metrics, abandoned

ANSWERED = datetime(2025, 3, 3, 10, 0, 0, tzinfo=UTC)


def after(seconds: float) -> datetime:
    return ANSWERED + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("connected", "ended", "expected"),
    [
        (0.05, None, False),  # the usual case: the worker took the call at once
        (1.99, None, False),
        (2.0, None, False),  # "within 2 s" includes 2 s
        (2.01, None, True),  # late: the callee heard over 2 s of dead air
        (None, None, True),  # the gateway hung up for want of a worker
        (None, 0.8, False),  # the callee hung up before the 2 s were over
        (None, 2.5, True),  # the callee waited in silence, then hung up
    ],
)
def test_abandoned(connected: float | None, ended: float | None, expected: bool) -> None:
    connected_at = after(connected) if connected is not None else None
    ended_at = after(ended) if ended is not None else None
    assert abandoned(ANSWERED, connected_at, ended_at) is expected
    assert ABANDON_SECONDS == 2.0


def test_worker_calls_and_abandoned_calls_are_counted_per_campaign_and_direction() -> None:
    metrics = Metrics()
    for connected in (0.1, 0.3, 2.5):
        metrics.worker_joined("c1", "outbound", ANSWERED, after(connected))
    metrics.worker_joined("c1", "outbound", ANSWERED, None)
    metrics.worker_joined("none", "inbound", ANSWERED, None, after(1.0))
    value = metrics.registry.get_sample_value
    assert value("dialer_worker_calls_total", {"campaign": "c1", "direction": "outbound"}) == 4
    assert value("dialer_calls_abandoned_total", {"campaign": "c1", "direction": "outbound"}) == 2
    assert value("dialer_worker_calls_total", {"campaign": "none", "direction": "inbound"}) == 1
    assert value("dialer_calls_abandoned_total", {"campaign": "none", "direction": "inbound"}) is None
