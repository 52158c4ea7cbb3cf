"""Phone number parsing and numbering-plan facts."""

from __future__ import annotations

import re

import pytest

from dialer.phone import (
    InvalidPhoneNumber,
    candidate_zones,
    country_of,
    is_local_to,
    is_premium_or_shared_cost,
    parse_phone,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (305) 555-1234", None, "+13055551234"),
        ("305-555-1234", "US", "+13055551234"),
        ("(305) 555 1234", "us", "+13055551234"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),
        ("416 555 1234", "CA", "+14165551234"),
        ("+91 98765 43210", None, "+919876543210"),
        ("+13055551234", "GB", "+13055551234"),  # an explicit country code beats the default
    ],
)
def test_parse_phone_normalises_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert parse_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("hello", None, "not a phone number"),
        ("", "US", "not a phone number"),
        ("   ", "US", "not a phone number"),
        ("12", "US", "too short"),
        ("+1 305 555", None, "too short"),
        ("+123456789012345678", None, "too long"),
        ("+999 123456", None, "unknown country code"),
        ("305 555 1234", None, "no country code and no default region"),
        ("305 555 1234", "XX", "unknown country code"),
        ("+44 20 1234", None, "not a valid number for region GB"),
        ("+1 123 555 1234", None, "not a valid number for region US"),
    ],
)
def test_parse_phone_rejects_with_a_reason_that_hides_the_number(
    raw: str, region: str | None, reason: str
) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_phone(raw, region)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)
    # Phone numbers are personal data: no run of the input's digits may reach the message.
    digits = re.sub(r"\D", "", raw)
    message = str(caught.value) + repr(caught.value)
    if len(digits) >= 3:
        assert digits not in re.sub(r"\D", "", message)
    assert caught.value.__cause__ is None


def test_candidate_zones() -> None:
    assert candidate_zones("+12125551234") == ("America/New_York",)
    assert candidate_zones("+442079460958") == ("Europe/London",)
    toll_free = candidate_zones("+18005551234")
    # A toll-free number may ring anywhere in the NANP: many zones, from Guam to Newfoundland.
    assert {"America/New_York", "Pacific/Honolulu", "America/St_Johns", "Pacific/Guam"} <= set(toll_free)


@pytest.mark.parametrize("number", ["+1907", "not a number", "+", "13055551234", ""])
def test_candidate_zones_is_empty_when_unknown(number: str) -> None:
    assert candidate_zones(number) == ()


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+13055551234", "US"),
        ("+18005551234", "US"),
        ("+14165551234", "CA"),
        ("+17875551234", "PR"),
        ("+442079460958", "GB"),
        ("+919876543210", "IN"),
        ("+80012345678", ""),  # international freephone: no country
        ("garbage", ""),
        ("+1907", ""),
    ],
)
def test_country_of(number: str, country: str) -> None:
    assert country_of(number) == country


@pytest.mark.parametrize(
    ("number", "premium"),
    [
        ("+449012345678", True),  # UK premium rate
        ("+19002345678", True),  # US 900
        ("+4918012345", True),  # German shared cost
        ("+442079460958", False),
        ("+18002345678", False),  # toll-free is not premium
        ("+447400123456", False),
    ],
)
def test_is_premium_or_shared_cost(number: str, premium: bool) -> None:
    assert is_premium_or_shared_cost(number) is premium


def test_is_premium_or_shared_cost_refuses_non_e164() -> None:
    with pytest.raises(InvalidPhoneNumber):
        is_premium_or_shared_cost("305 555 1234")


@pytest.mark.parametrize(
    ("did", "callee", "score"),
    [
        ("+13055550100", "+13055551234", 2),  # same area code
        ("+13055550100", "+17865551234", 1),  # Florida overlay, but another area code
        ("+12125550100", "+13055551234", 1),
        ("+14165550100", "+13055551234", 0),  # Canada vs US: same +1, different countries
        ("+442079460958", "+442071234567", 2),  # London NDC 20
        ("+442079460958", "+441612345678", 1),  # Manchester NDC 161
        ("+442079460958", "+13055551234", 0),
        ("+13055550100", "not a number", 0),
    ],
)
def test_is_local_to(did: str, callee: str, score: int) -> None:
    assert is_local_to(did, callee) == score
