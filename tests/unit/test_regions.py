"""Callee profiles, the shipped regional rules, and the operator's rules file."""

from __future__ import annotations

import tomllib
from datetime import date, time
from importlib import resources
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import geocoder

from dialer.regions import WHOLE_DAY, CalleeProfile, RegionalRule, RuleBook, callee_profile, load_rules

EIGHT_TO_NINE = (time(8), time(21))
EIGHT_TO_EIGHT = (time(8), time(20))


@pytest.mark.parametrize(
    ("number", "country", "subdivision"),
    [
        ("+13055551234", "US", "US-FL"),  # Miami
        ("+12145551234", "US", "US-TX"),  # Dallas
        ("+14055551234", "US", "US-OK"),
        ("+14105551234", "US", "US-MD"),
        ("+12065551234", "US", "US-WA"),
        ("+12025551234", "US", "US-DC"),
        ("+18005551234", "US", None),  # toll-free names no state
        ("+14165551234", "CA", None),
        ("+17875551234", "PR", None),
        ("+442079460958", "GB", None),
        ("+1907", "", None),
    ],
)
def test_callee_profile(number: str, country: str, subdivision: str | None) -> None:
    profile = callee_profile(number)
    assert (profile.country, profile.subdivision) == (country, subdivision)


def test_callee_profile_zones() -> None:
    assert callee_profile("+13055551234").zones == ("America/New_York",)
    assert len(callee_profile("+18005551234").zones) > 10
    assert callee_profile("+1907").zones == ()


def _shipped_area_codes() -> dict[str, str]:
    text = resources.files("config").joinpath("us_area_codes.toml").read_text(encoding="utf-8")
    return {str(code): state for state, codes in tomllib.loads(text)["states"].items() for code in codes}


_STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
}  # fmt: skip


def _geocoded_state(npa: int) -> str | None:
    """The state phonenumbers' geocoder names for a number in this area code, if any."""
    description = geocoder.description_for_number(phonenumbers.parse(f"+1{npa}2345678"), "en")
    if description in _STATE_NAMES:
        return _STATE_NAMES[description]
    suffix = description.rsplit(", ", 1)[-1]
    return suffix if suffix in _STATE_NAMES.values() else None


def test_area_code_table_covers_every_geographic_us_area_code() -> None:
    table = _shipped_area_codes()
    assert len(set(table.values())) == 51  # 50 states and DC
    for npa in range(200, 1000):
        state = _geocoded_state(npa)
        if state is not None:
            assert table.get(str(npa)) == state, npa
    # And nothing non-geographic sneaked in: toll-free, premium and personal-communication codes.
    for code in ("800", "833", "844", "855", "866", "877", "888", "900", "500", "521", "533"):
        assert code not in table


def test_shipped_rules() -> None:
    book = load_rules()
    us = book.get("US")
    assert us is not None and us.hours == (EIGHT_TO_NINE,) * 7 and us.max_calls_per_24h is None
    for region in ("US-FL", "US-OK", "US-MD"):
        rule = book.get(region)
        assert rule is not None and rule.hours == (EIGHT_TO_EIGHT,) * 7 and rule.max_calls_per_24h == 3
    washington = book.get("US-WA")
    assert washington is not None and washington.hours == (EIGHT_TO_EIGHT,) * 7
    assert washington.max_calls_per_24h is None
    texas = book.get("US-TX")
    assert texas is not None and texas.hours == ((time(9), time(21)),) * 6 + ((time(12), time(21)),)
    canada = book.get("CA")
    assert canada is not None
    assert canada.hours == ((time(9), time(21, 30)),) * 5 + ((time(10), time(18)),) * 2
    india = book.get("IN")
    assert india is not None and india.hours == ((time(9), time(21)),) * 7
    uk = book.get("GB")
    assert uk is not None and uk.hours is None and uk.max_calls_per_24h is None
    for region in ("PR", "VI", "GU", "AS", "MP"):
        territory = book.get(region)
        assert territory is not None and territory.hours == (EIGHT_TO_NINE,) * 7
    assert all(rule.source and not rule.holiday_ban for rule in book.rules.values())


def test_rules_for_applies_country_and_subdivision() -> None:
    book = load_rules()
    florida = book.rules_for(callee_profile("+13055551234"))
    assert [rule.region for rule in florida] == ["US", "US-FL"]
    assert [rule.region for rule in book.rules_for(callee_profile("+12125551234"))] == ["US"]
    assert book.rules_for(CalleeProfile("DE", None, ("Europe/Berlin",))) == ()
    assert book.rules_for(CalleeProfile("", None, ())) == ()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extra_rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_extra_rows_change_only_the_keys_they_set(tmp_path: Path) -> None:
    extra = _write(tmp_path, '[[rule]]\nregion = "US-FL"\nholiday_ban = true\n')
    florida = load_rules(extra).get("US-FL")
    assert florida is not None
    assert florida.holiday_ban and florida.max_calls_per_24h == 3 and florida.hours == (EIGHT_TO_EIGHT,) * 7
    assert florida.holiday_calendar == ("US", "FL")
    assert florida.is_holiday(date(2025, 7, 4)) and not florida.is_holiday(date(2025, 7, 7))


def test_extra_rows_add_regions_and_remove_limits(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        """
[[rule]]
region = "us-ri"
hours = { weekdays = ["09:00", "18:00"], saturday = ["10:00", "17:00"], sunday = "banned" }
holiday_ban = true
source = "R.I. Gen. Laws §5-61-3.4"

[[rule]]
region = "US-MD"
max_calls_per_24h = "none"
hours = "none"

[[rule]]
region = "DE"
hours = { daily = "any", monday = ["08:00", "24:00"] }
max_calls_per_24h = 5
source = "test"
""",
    )
    book = load_rules(extra)
    rhode_island = book.get("US-RI")
    assert rhode_island is not None
    assert rhode_island.hours == ((time(9), time(18)),) * 5 + ((time(10), time(17)), None)
    assert rhode_island.hours_on(6) is None
    maryland = book.get("US-MD")
    assert maryland is not None and maryland.hours is None and maryland.max_calls_per_24h is None
    assert maryland.hours_on(2) == WHOLE_DAY
    germany = book.get("DE")
    assert germany is not None and germany.hours is not None
    assert germany.hours[0] == (time(8), time(0)) and germany.hours[1] == WHOLE_DAY
    assert book.get("US") is not None and len(book) == len(load_rules()) + 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('region = "US-FL"\nmax_calls_per_24 = 2', "unknown key(s) ['max_calls_per_24']"),
        ('region = "USA"\nsource = "x"', "region must be like"),
        ('source = "x"', "region must be like"),
        ('region = "US-FL"\nhours = { daily = ["8am", "20:00"] }', "is not a local time"),
        ('region = "US-FL"\nhours = { daily = ["20:00", "08:00"] }', "ends before it starts"),
        ('region = "US-FL"\nhours = { daily = ["24:00", "08:00"] }', "is not a local time"),
        ('region = "US-FL"\nhours = { weekdays = ["08:00", "20:00"] }', "do not cover saturday, sunday"),
        ('region = "US-FL"\nhours = { funday = "any", daily = "any" }', "unknown day(s) ['funday']"),
        ('region = "US-FL"\nhours = ["08:00", "20:00"]', "hours must be a table of days"),
        ('region = "US-FL"\nhours = { daily = "sometimes" }', 'expected ["HH:MM", "HH:MM"]'),
        ('region = "US-FL"\nmax_calls_per_24h = 0', "max_calls_per_24h must be an integer >= 1"),
        ('region = "US-FL"\nmax_calls_per_24h = true', "max_calls_per_24h must be an integer >= 1"),
        ('region = "US-FL"\nholiday_ban = "yes"', "holiday_ban must be true or false"),
        ('region = "ZZ"\nhours = { daily = "any" }', "a new region needs a source"),
        ('region = "US-ZZ"\nholiday_ban = true\nsource = "x"', "no holiday calendar"),
        ('region = "US-FL"\nsource = ""', "source must be a non-empty string"),
    ],
)
def test_malformed_rows_name_the_file_and_row(tmp_path: Path, row: str, message: str) -> None:
    extra = _write(tmp_path, f'[[rule]]\nregion = "GB"\n\n[[rule]]\n{row}\n')
    with pytest.raises(ValueError) as caught:
        load_rules(extra)
    assert message in str(caught.value)
    assert f"{extra}: rule #2" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nregion = "GB"\n[[rule]]\nregion = "GB"\n', "appears twice"),
        ("[[rule]\n", "not valid TOML"),
        ('region = "GB"\n', "unknown top-level key(s)"),
        ("rule = 3\n", "array of tables"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    extra = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load_rules(extra)
    assert message in str(caught.value) and str(extra) in str(caught.value)


def test_regional_rule_checks_itself() -> None:
    with pytest.raises(ValueError, match="one entry per weekday"):
        RegionalRule("US", hours=(EIGHT_TO_NINE,) * 6)
    with pytest.raises(ValueError, match="end before they start"):
        RegionalRule("US", hours=((time(21), time(8)),) * 7)
    with pytest.raises(ValueError, match="at least 1"):
        RegionalRule("US", max_calls_per_24h=0)
    with pytest.raises(ValueError, match="two rules for region US"):
        RuleBook([RegionalRule("US"), RegionalRule("US")])


def test_holiday_calendar_defaults_and_overrides() -> None:
    assert RegionalRule("US-FL", holiday_ban=True).holiday_calendar == ("US", "FL")
    assert RegionalRule("GB", holiday_ban=True).holiday_calendar == ("GB", None)
    assert RegionalRule("GB", holiday_ban=True, holiday_subdivision="SCT").holiday_calendar == ("GB", "SCT")
    custom = RegionalRule("US-FL", holiday_ban=True, holiday_country="PR")
    assert custom.holiday_calendar == ("PR", None)
    assert not RegionalRule("US").is_holiday(date(2025, 12, 25))  # no ban, no holidays
    assert RegionalRule("US", holiday_ban=True).is_holiday(date(2025, 12, 25))
