"""Campaign use cases behind the routes: create with candidates and caller IDs, transitions, views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.deps import Services
from api.errors import BadRequest, Conflict, NotFound
from api.schemas.campaigns import (
    AllocatedDid,
    CampaignCreate,
    CampaignCreated,
    CampaignPublic,
    CampaignSettings,
    Candidate,
)
from dialer.domain import CampaignStatus, ProspectState
from dialer.phone import InvalidPhoneNumber, parse_phone
from dialer.storage import CampaignRecord, CampaignSpec, SqlStore
from dialer.storage.campaigns import ProspectRow

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


async def resolve_from_numbers(
    store: SqlStore, tenant_id: UUID, raw: Sequence[str], region: str, code: str
) -> list[UUID]:
    """The ids of the tenant's DIDs named by ``raw``; ``code`` (400) for a malformed one, 404 if not ours."""
    numbers: list[str] = []
    for index, number in enumerate(raw):
        try:
            numbers.append(parse_phone(number, region))
        except InvalidPhoneNumber as exc:
            raise BadRequest(
                code,
                f"from_numbers[{index}]: {exc.reason}",
                details=[{"field": f"from_numbers.{index}", "reason": exc.reason}],
            ) from None
    ids = await store.number_ids(tenant_id, numbers)
    missing = [i for i, number in enumerate(numbers) if number not in ids]
    if missing:
        raise NotFound(
            "PHONE_NUMBER_NOT_FOUND", f"from_numbers[{missing[0]}] is not one of your phone numbers"
        )
    return [ids[number] for number in numbers]


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
    return values


def build_spec(name: str, agent_id: UUID, settings: Mapping[str, Any], region: str | None) -> CampaignSpec:
    """A CampaignSpec, BAD_REQUEST_FORMAT for an unknown time zone or weekday."""
    try:
        return CampaignSpec(name=name, agent_id=agent_id, default_region=region, **settings)
    except ValueError as exc:
        raise BadRequest("BAD_REQUEST_FORMAT", str(exc)) from None


async def create_campaign(svc: Services, tenant_id: UUID, body: CampaignCreate) -> CampaignCreated:
    """Validate everything first, then store campaign, caller IDs and prospects, then maybe start."""
    store = svc.store
    if len(body.candidates) > MAX_CANDIDATES:
        raise BadRequest(
            "validation_error",
            f"at most {MAX_CANDIDATES} candidates per campaign creation; "
            "add more with POST /campaigns/{id}/prospects",
        )
    if not body.from_numbers and not body.use_vanira_managed:
        raise BadRequest(
            "bad_request",
            "No Caller IDs provided. You must either provide from_numbers or set use_vanira_managed to true.",
        )
    if await store.tenant_agent(tenant_id, body.agent_id) is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    region = (body.default_region or await store.tenant_region(tenant_id) or "US").upper()
    spec = build_spec(body.name, body.agent_id, settings_of(body), region)
    rows, errors = normalise_rows(body.candidates, region)
    if errors:
        # All or nothing: a campaign holds at most 50 candidates, so the caller fixes and resends them
        # rather than finding a half-filled campaign; /prospects is the forgiving bulk path.
        raise BadRequest(
            "validation_error",
            f"{len(errors)} candidate(s) have an invalid phone number; nothing was created",
            details=[
                {"row": e["row"], "field": f"candidates.{e['row'] - 1}.phone", "reason": e["reason"]}
                for e in errors
            ],
        )
    did_ids = await resolve_from_numbers(store, tenant_id, body.from_numbers, region, "validation_error")
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
    """The schedule-start time: ISO 8601 with a zone, in the future; BAD_REQUEST_FORMAT otherwise."""
    if raw is None or not raw.strip():
        raise BadRequest("BAD_REQUEST_FORMAT", "scheduled_start_time is required")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest("BAD_REQUEST_FORMAT", "scheduled_start_time is not an ISO 8601 datetime") from None
    if when.tzinfo is None:
        # A calling schedule on a guessed zone is how calls land at 3 a.m.: make the caller say it.
        raise BadRequest("BAD_REQUEST_FORMAT", "scheduled_start_time needs a time zone (e.g. Z or +05:30)")
    if when <= now:
        raise BadRequest("VALIDATION_ERROR", "scheduled_start_time must be in the future")
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
