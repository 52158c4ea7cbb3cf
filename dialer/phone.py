"""Phone numbers: parse to E.164 and read what the numbering plan says about one (zones, country, type)."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as pn_timezone

# What phonenumbers answers for a number it cannot place in any zone.
_UNKNOWN_ZONE = "Etc/Unknown"

_PARSE_REASONS = {
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_LONG: "too long",
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
}

_POSSIBLE_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "invalid length",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}

_PREMIUM_TYPES = frozenset({PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST})


class InvalidPhoneNumber(ValueError):
    """A string that is not a diallable phone number.

    ``reason`` is meant for people and logs; it never contains the number itself, because phone
    numbers are personal data and error messages end up in logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_phone(raw: str, default_region: str | None = None) -> str:
    """The E.164 form of ``raw``; national formats are read as numbers of ``default_region``."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber("not a phone number")
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        no_plus = not raw.lstrip().startswith("+")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None and no_plus:
            reason = "no country code and no default region"
        # `from None`: the library's exception adds nothing and must not drag the input into tracebacks.
        raise InvalidPhoneNumber(reason) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        raise InvalidPhoneNumber(_POSSIBLE_REASONS[possible])
    if not phonenumbers.is_valid_number(number):
        plan = phonenumbers.region_code_for_country_code(number.country_code or 0)
        raise InvalidPhoneNumber(f"not a valid number for region {plan}")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _parse_e164(e164: str) -> PhoneNumber:
    """Parse a number already stored in E.164; InvalidPhoneNumber if it is not."""
    if not isinstance(e164, str) or not e164.startswith("+"):
        raise InvalidPhoneNumber("not an E.164 number")
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException:
        raise InvalidPhoneNumber("not an E.164 number") from None


def candidate_zones(e164: str) -> tuple[str, ...]:
    """Every IANA zone the number may ring in; empty when the numbering plan cannot tell.

    Empty also for input that is not E.164: the caller holds such a prospect rather than guess.
    """
    try:
        number = _parse_e164(e164)
    except InvalidPhoneNumber:
        return ()
    zones = pn_timezone.time_zones_for_number(number)
    return tuple(zone for zone in zones if zone != _UNKNOWN_ZONE)


def country_of(e164: str) -> str:
    """The ISO 3166 alpha-2 region of the number ("US", "GB", ...), or "" when unknown."""
    try:
        return _country(_parse_e164(e164))
    except InvalidPhoneNumber:
        return ""


def _country(number: PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    # "001" marks non-geographic numbering (international freephone and the like): no country.
    if not region or not region.isalpha():
        return ""
    return str(region)


def is_premium_or_shared_cost(e164: str) -> bool:
    """Whether calling the number costs extra (premium rate or shared cost); raises if not E.164."""
    return phonenumbers.number_type(_parse_e164(e164)) in _PREMIUM_TYPES


def _area_prefix(number: PhoneNumber) -> str:
    """The digits that name the number's area: the 3-digit area code in NANP, else the NDC."""
    national = phonenumbers.national_significant_number(number)
    if number.country_code == 1:
        return national[:3]
    length = phonenumbers.length_of_national_destination_code(number)
    return national[:length] if length > 0 else ""


def is_local_to(did_e164: str, callee_e164: str) -> int:
    """How local a caller ID is to a callee: 2 same area code, 1 same country, 0 otherwise."""
    try:
        did, callee = _parse_e164(did_e164), _parse_e164(callee_e164)
    except InvalidPhoneNumber:
        return 0
    country = _country(did)
    if not country or country != _country(callee):
        return 0
    prefix = _area_prefix(did)
    return 2 if prefix and prefix == _area_prefix(callee) else 1
