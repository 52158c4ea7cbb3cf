"""Campaign use cases behind the routes: create with candidates and caller IDs, transitions, views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.deps import Services
from api.errors import Conflict, NotFound, describe, invalid, invalid_field
from api.schemas.campaigns import (
    AllocatedDid,
    CampaignCreate,
    CampaignCreated,
    CampaignPublic,
    CampaignSettings,
    Candidate,
    zone_problem,
)
from dialer.domain import CampaignStatus, ProspectState
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.storage import CampaignRecord, CampaignSpec, SqlStore
from dialer.storage.campaigns import ProspectRow
from dialer.storage.records import weekday_name

#: The seed's limit on ``candidates`` in one POST /campaigns; bigger lists go to /prospects.
MAX_CANDIDATES = 50


@dataclass(frozen=True)
class Transition:
    """One lifecycle action: the statuses it may start from, where it leads, what the seed answers."""

    verb: str
    source: tuple[CampaignStatus, ...]
    target: CampaignStatus
    message: str


TRANSITIONS = {
    "start": Transition(
        "start",
        (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
        CampaignStatus.ACTIVE,
        "Campaign started successfully",
    ),
    "pause": Transition(
        "pause", (CampaignStatus.ACTIVE,), CampaignStatus.PAUSED, "Campaign paused successfully"
    ),
    "resume": Transition(
        "resume", (CampaignStatus.PAUSED,), CampaignStatus.ACTIVE, "Campaign resumed successfully"
    ),
}
SCHEDULABLE = (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)


async def owned_campaign(store: SqlStore, tenant_id: UUID, campaign_id: UUID) -> CampaignRecord:
    """The tenant's campaign; CAMPAIGN_NOT_FOUND for an unknown one and for another tenant's alike."""
    record = await store.get_campaign(campaign_id)
    if record is None or record.tenant_id != tenant_id:
        raise NotFound("CAMPAIGN_NOT_FOUND", "campaign not found")
    return record


def normalise_rows(
    candidates: Iterable[Candidate], region: str
) -> tuple[list[ProspectRow], list[dict[str, Any]]]:
    """Rows with E.164 phones, and the rows that could not be read (1-based ``row``, reason)."""
    rows: list[ProspectRow] = []
    errors: list[dict[str, Any]] = []
    for index, candidate in enumerate(candidates, start=1):
        try:
            phone = parse_phone(candidate.phone, region)
        except InvalidPhoneNumber as exc:
            errors.append({"row": index, "field": "phone", "reason": exc.reason})
            continue
        rows.append((candidate.name.strip(), phone, dict(candidate.model_extra or {})))
    return rows, errors


async def check_from_numbers(
    store: SqlStore, tenant_id: UUID, raw: Sequence[str], region: str
) -> tuple[list[UUID], list[dict[str, Any]], list[dict[str, Any]]]:
    """The ids of the tenant's DIDs named by ``raw``, the malformed ones, and the ones not the tenant's."""
    numbers: dict[int, str] = {}
    bad: list[dict[str, Any]] = []
    for index, number in enumerate(raw):
        try:
            numbers[index] = parse_phone(number, region)
        except InvalidPhoneNumber as exc:
            bad.append({"field": f"from_numbers.{index}", "reason": exc.reason})
    ids = await store.number_ids(tenant_id, list(numbers.values()))
    missing = [
        {"field": f"from_numbers.{i}", "reason": "not one of your phone numbers"}
        for i, number in numbers.items()
        if number not in ids
    ]
    return [ids[n] for n in numbers.values() if n in ids], bad, missing


async def resolve_from_numbers(
    store: SqlStore, tenant_id: UUID, raw: Sequence[str], region: str
) -> list[UUID]:
    """The ids of the tenant's DIDs named by ``raw``: VALIDATION_ERROR if malformed, 404 if not ours."""
    ids, bad, missing = await check_from_numbers(store, tenant_id, raw, region)
    if bad:
        raise invalid(bad + missing)
    if missing:
        raise NotFound("PHONE_NUMBER_NOT_FOUND", describe_missing(missing), details=missing)
    return ids


def describe_missing(missing: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{m['field']}: {m['reason']}" for m in missing)


def settings_of(body: CampaignSettings) -> dict[str, Any]:
    """The settings given in a body, as CampaignSpec keyword arguments (absent and null ones left out)."""
    values = {
        name: value
        for name, value in body.model_dump(include=set(CampaignSettings.model_fields)).items()
        if value is not None
    }
    if "call_days" in values:
        values["call_days"] = tuple(values["call_days"])
    if values.get("opt_out_digit") == "":
        values["opt_out_digit"] = None  # "" clears the digit (null leaves a PATCH's field unchanged)
    if values.get("amd_message_url") == "":
        values["amd_message_url"] = None
    return values


def build_spec(name: str, agent_id: UUID, settings: Mapping[str, Any], region: str | None) -> CampaignSpec:
    """A CampaignSpec, VALIDATION_ERROR for a setting it refuses (the body's validators catch most)."""
    try:
        return CampaignSpec(name=name, agent_id=agent_id, default_region=region, **settings)
    except ValueError as exc:
        raise invalid_field("", str(exc)) from None


async def create_campaign(svc: Services, tenant_id: UUID, body: CampaignCreate) -> CampaignCreated:
    """Validate everything first, then store campaign, caller IDs and prospects, then maybe start."""
    store = svc.store
    region = (body.default_region or await store.tenant_region(tenant_id) or "US").upper()
    did_ids, rows, errors, missing = await _check_create(store, tenant_id, body, region)
    if errors:
        # All or nothing, every problem in one answer: a campaign holds at most 50 candidates, so the
        # caller fixes and resends them rather than finding a half-filled campaign (/prospects is the
        # forgiving bulk path). An unknown agent or number is listed too, not answered alone first.
        raise invalid(errors + missing, f"nothing was created: {describe(errors + missing)}")
    if missing:
        code = "AGENT_NOT_FOUND" if missing[0]["field"] == "agent_id" else "PHONE_NUMBER_NOT_FOUND"
        raise NotFound(code, describe_missing(missing), details=missing)
    spec = build_spec(body.name, body.agent_id, settings_of(body), region)
    campaign_id = await store.create_campaign(tenant_id, spec)
    if did_ids:
        await store.allocate_dids(campaign_id, did_ids)
    inserted, duplicates = await store.add_prospects(campaign_id, rows)
    started = False
    if body.start_campaign:
        started = await store.set_campaign_status(
            campaign_id, CampaignStatus.ACTIVE, expect=TRANSITIONS["start"].source
        )
        if started and svc.runtime is not None:
            svc.runtime.campaigns_changed()
        if started and svc.webhooks is not None:
            svc.webhooks.campaign_changed(tenant_id, campaign_id, "start", CampaignStatus.ACTIVE.value)
    message = "Campaign created and started successfully" if started else "Campaign created successfully"
    return CampaignCreated(
        campaign_id=campaign_id,
        total_prospects=inserted,
        duplicates=duplicates,
        message=message,
        started=started,
    )


async def _check_create(
    store: SqlStore, tenant_id: UUID, body: CampaignCreate, region: str
) -> tuple[list[UUID], list[ProspectRow], list[dict[str, Any]], list[dict[str, Any]]]:
    """POST /campaigns' checks beyond the body's shape: the DIDs' ids, the rows, what is wrong, what is
    not found. Every check runs: the caller-ID rule does not hide a bad phone or an unknown agent."""
    errors = _schedule_errors(body)
    if len(body.candidates) > MAX_CANDIDATES:
        errors.append(
            {
                "field": "candidates",
                "reason": f"at most {MAX_CANDIDATES} candidates per campaign creation; "
                "add more with POST /campaigns/{id}/prospects",
            }
        )
    rows, bad_rows = normalise_rows(body.candidates, region)
    errors += [
        {"row": e["row"], "field": f"candidates.{e['row'] - 1}.phone", "reason": e["reason"]}
        for e in bad_rows
    ]
    if not body.from_numbers and not body.use_vanira_managed:
        errors.append({"field": "from_numbers", "reason": NO_CALLER_IDS})
    did_ids, bad_numbers, missing = await check_from_numbers(store, tenant_id, body.from_numbers, region)
    errors += bad_numbers
    if await store.tenant_agent(tenant_id, body.agent_id) is None:
        missing.insert(0, {"field": "agent_id", "reason": "agent not found"})
    return did_ids, rows, errors, missing


def _schedule_errors(body: CampaignCreate) -> list[dict[str, Any]]:
    """The time zone and weekdays the calling window needs, each one that is unknown."""
    errors = []
    if body.timezone is not None and (reason := zone_problem(body.timezone)):
        errors.append({"field": "timezone", "reason": reason})
    for index, day in enumerate(body.call_days or ()):
        try:
            weekday_name(day)
        except ValueError as exc:
            errors.append({"field": f"call_days.{index}", "reason": str(exc)})
    return errors


NO_CALLER_IDS = (
    "No Caller IDs provided. You must either provide from_numbers or set use_vanira_managed to true."
)


async def transition(svc: Services, record: CampaignRecord, verb: str) -> CampaignStatus:
    """Apply start, pause or resume; 409 INVALID_CAMPAIGN_TRANSITION from a status that forbids it."""
    rule = TRANSITIONS[verb]
    done = await svc.store.set_campaign_status(record.id, rule.target, expect=rule.source)
    if not done:
        current = await svc.store.get_campaign(record.id)
        status = current.status.value if current else record.status.value
        raise Conflict("INVALID_CAMPAIGN_TRANSITION", f"cannot {verb} a campaign that is {status}")
    if rule.target is CampaignStatus.ACTIVE and svc.runtime is not None:
        svc.runtime.campaigns_changed()
    if svc.webhooks is not None:
        svc.webhooks.campaign_changed(record.tenant_id, record.id, verb, rule.target.value)
    return rule.target


def parse_start_time(raw: str | None, now: datetime) -> datetime:
    """The schedule-start time: ISO 8601 with a zone, in the future; VALIDATION_ERROR otherwise."""
    if raw is None or not raw.strip():
        raise invalid_field("scheduled_start_time", "required")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise invalid_field("scheduled_start_time", "not an ISO 8601 datetime") from None
    if when.tzinfo is None:
        # A calling schedule on a guessed zone is how calls land at 3 a.m.: make the caller say it.
        raise invalid_field("scheduled_start_time", "needs a time zone (e.g. Z or +05:30)")
    if when <= now:
        raise invalid_field("scheduled_start_time", "must be in the future")
    return when.astimezone(UTC)


async def campaign_view(store: SqlStore, record: CampaignRecord) -> CampaignPublic:
    """GET /campaigns/{id}: settings, counters by prospect state and the allocated caller IDs."""
    counts = await store.campaign_counts(record.id)
    dids = await store.allocated_numbers(record.id)
    spec = record.spec
    return CampaignPublic(
        id=record.id,
        client_id=record.tenant_id,
        status=record.status.value,
        total_prospects=sum(n for state, n in counts.items() if state != ProspectState.REMOVED.value),
        active_prospects=counts[ProspectState.DIALING.value],
        pending_prospects=counts[ProspectState.PENDING.value],
        prospects_by_state=counts,
        allocated_dids=[
            AllocatedDid(
                did_id=d.id,
                number=d.number,
                max_concurrent_calls=d.max_concurrent_calls,
                daily_cap=d.daily_cap,
            )
            for d in dids
        ],
        scheduled_start_time=record.scheduled_start_time,
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=record.started_at,
        completed_at=record.completed_at,
        **{name: getattr(spec, name) for name in _SPEC_VIEW},
        call_days=list(spec.call_days),
        default_region=spec.default_region or "",
    )


_SPEC_VIEW = tuple(
    name
    for name in CampaignPublic.model_fields
    if name in CampaignSpec.__dataclass_fields__ and name not in ("call_days", "default_region")
)
