"""The log mask hides phone-number-shaped digits and leaves addresses, ports and dates readable."""

from __future__ import annotations

import pytest

from dialer.logs import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call to +442079460201 failed", "call to [phone] failed"),
        ("dial 415 555 2671 now", "dial [phone] now"),
        ("+1 (415) 555-2671", "[phone]"),
        ("caller 14155552671 hung up", "caller [phone] hung up"),
        ("API on http://127.0.0.1:52125", "API on http://127.0.0.1:52125"),
        ("next run at: 2026-11-23 12:15:29 UTC", "next run at: 2026-11-23 12:15:29 UTC"),
        ("SIP on port 5060, 4 calls", "SIP on port 5060, 4 calls"),
        ("attempt 3f2a0c1e-9b1d-4c7e-8f00-123456789abc", "attempt 3f2a0c1e-9b1d-4c7e-8f00-123456789abc"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
