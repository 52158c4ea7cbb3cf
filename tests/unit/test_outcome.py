"""Outcome mapping: every row of docs/pjsua2.md's outcome table, plus retryability."""

import pytest

from dialer.outcome import UNRESOLVED_HOST, Outcome, classify, end_reason, is_retryable, retry_bucket


@pytest.mark.parametrize(
    ("code", "confirmed", "cause", "expected"),
    [
        (486, False, 17, Outcome.BUSY),  # 486 Busy
        (480, False, 19, Outcome.NO_ANSWER),  # 180 then 480
        (408, False, None, Outcome.NO_ANSWER),  # 180 then 408
        (487, False, None, Outcome.NO_ANSWER),  # ringing, our CANCEL at the timeout
        (503, False, 34, Outcome.CAPACITY),  # 503 with "no circuit available"
        (503, False, None, Outcome.CAPACITY),
        (404, False, 1, Outcome.INVALID_NUMBER),  # unallocated number
        (404, False, None, Outcome.INVALID_NUMBER),
        (603, False, None, Outcome.REJECTED),  # decline
        (200, True, 16, Outcome.ANSWERED),  # answered, far end BYE
        (200, True, None, Outcome.ANSWERED),  # answered, we hang up
        (480, False, 34, Outcome.CAPACITY),  # 480 with a capacity cause
        (500, False, None, Outcome.FAILED),
        (None, False, None, Outcome.FAILED),  # nothing came back at all
        (600, False, None, Outcome.BUSY),  # busy everywhere
        (484, False, 28, Outcome.INVALID_NUMBER),
    ],
)
def test_classify_table(code: int | None, confirmed: bool, cause: int | None, expected: Outcome) -> None:
    assert classify(code, confirmed, cause) is expected


@pytest.mark.parametrize(
    ("code", "reason", "expected", "kept"),
    [
        # pjsua2's own 502 when the trunk host does not resolve (measured: tests/sip/test_outbound.py).
        (502, "gethostbyname() has returned error (PJ_ERESOLVE)", Outcome.FAILED, UNRESOLVED_HOST),
        (502, 'DNS "Name Error" (PJLIB_UTIL_EDNS_NXDOMAIN)', Outcome.FAILED, UNRESOLVED_HOST),
        # A carrier's own 502 stays a congested network, its reason kept.
        (502, "Bad Gateway", Outcome.CAPACITY, "Bad Gateway"),
        (502, None, Outcome.CAPACITY, None),
        # The resolver's words on another code are not ours to reinterpret.
        (503, "gethostbyname() has returned error (PJ_ERESOLVE)", Outcome.CAPACITY, None),
    ],
)
def test_unresolvable_trunk_host_is_failed_not_capacity(
    code: int, reason: str | None, expected: Outcome, kept: str | None
) -> None:
    assert classify(code, False, None, reason) is expected
    assert end_reason(code, reason) == (kept if code == 502 else reason)
    assert classify(code, True, None, reason) is Outcome.ANSWERED


def test_confirmed_wins_over_any_code() -> None:
    # pjsua2 reports 200 for both answered cases; a 487 after CONFIRMED is still an answered call.
    assert classify(487, True) is Outcome.ANSWERED


@pytest.mark.parametrize(
    ("outcome", "bucket"),
    [
        (Outcome.BUSY, "busy"),
        (Outcome.NO_ANSWER, "no_answer"),
        (Outcome.VOICEMAIL, "voicemail"),
        (Outcome.FAILED, "failed"),
        (Outcome.CAPACITY, "failed"),
        (Outcome.UNKNOWN, "failed"),
        (Outcome.ANSWERED, None),
        (Outcome.TRANSFERRED, None),
        (Outcome.REJECTED, None),
        (Outcome.INVALID_NUMBER, None),
    ],
)
def test_retry_bucket(outcome: Outcome, bucket: str | None) -> None:
    assert retry_bucket(outcome) == bucket
    assert is_retryable(outcome) is (bucket is not None)
