"""Call use cases: validate and place one SIP call, shape call records, pass actions to the gateway."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from uuid import UUID

from fastapi import Request

from api.deps import Principal, Services
from api.errors import BadGateway, BadRequest, Conflict, Forbidden, NotFound, Unavailable, invalid_field
from api.runtime import CallRejected, GatewayUnavailable
from api.schemas.calls import (
    AgentClient,
    CallAgent,
    CallCreate,
    CallCreated,
    CallDetail,
    CallProspect,
    CallSummary,
    KeyValue,
    Party,
    Recording,
    Transfer,
)
from dialer.domain import AmdSettings, AttemptResult
from dialer.outcome import Outcome
from dialer.phone import InvalidPhoneNumber, is_local_to, parse_phone
from dialer.recordings import recording_url
from dialer.storage import NumberRecord, SqlStore
from dialer.storage.views import CallView, call_status

log = logging.getLogger(__name__)

# The seed's "strict E.164": a plus and 7 to 15 digits, nothing else (no spaces, no national forms).
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def strict_e164(raw: str, field: str) -> str:
    """``raw`` if it is a valid E.164 number, else VALIDATION_ERROR naming the field and the reason."""
    if not _E164.match(raw):
        raise invalid_field(field, "must be E.164 (+ and 7 to 15 digits)")
    try:
        return parse_phone(raw)
    except InvalidPhoneNumber as exc:
        raise invalid_field(field, exc.reason) from None


async def _caller_id(store: SqlStore, tenant_id: UUID, from_number: str | None, to: str) -> NumberRecord:
    """The tenant's named number, else the managed pool's number most local to the callee."""
    if from_number is not None:
        found = await store.find_number(tenant_id, strict_e164(from_number, "sip_data.from_number"))
        if found is None:
            raise NotFound("PHONE_NUMBER_NOT_FOUND", "sip_data.from_number is not one of your numbers")
        if not found.active:
            raise invalid_field("sip_data.from_number", "this number is not active")
        return found
    pool = await store.managed_numbers()
    if not pool:
        raise invalid_field("sip_data.from_number", "required: the managed pool is empty")
    return max(pool, key=lambda n: is_local_to(n.number, to))  # max keeps the first of equals


async def create_call(svc: Services, key: Principal, body: CallCreate) -> CallCreated:
    """Check everything, write the call row (status dialing), then ask the gateway to place it."""
    if body.type == "web":
        raise BadRequest(
            "WEB_CALLS_NOT_SUPPORTED", "this gateway places SIP calls only; web calls are not served"
        )
    if not key.is_secret:
        raise Forbidden("INSUFFICIENT_SCOPE", "a publishable key (pk_live_) cannot create SIP calls")
    if body.sip_data is None:
        raise invalid_field("sip_data", "required when type is sip")
    store = svc.store
    to = strict_e164(body.sip_data.to, "sip_data.to")
    if await store.tenant_agent(key.tenant_id, body.agent_id) is None:
        raise NotFound("AGENT_NOT_FOUND", "agent not found")
    if body.prospect_id is not None:
        prospect = await store.get_prospect(body.prospect_id)
        if prospect is None or prospect.tenant_id != key.tenant_id:
            raise NotFound("PROSPECT_NOT_FOUND", "prospect not found")
    if await store.has_dnc(key.tenant_id, to):
        raise Conflict("NUMBER_ON_DNC_LIST", "sip_data.to is on your do-not-call list")
    amd = amd_of(body)
    did = await _caller_id(store, key.tenant_id, body.sip_data.from_number, to)
    if svc.runtime is None:
        # Checked before writing: a call row nobody will ever dial would stay "triggered" forever.
        raise Unavailable("UPSTREAM_SERVICE_TIMEOUT", "the SIP gateway is not running in this process")
    call_id = await store.create_call(
        key.tenant_id,
        did.number,
        to,
        from_did_id=did.id,
        trunk_id=did.trunk_id,
        agent_id=body.agent_id,
        prospect_id=body.prospect_id,
        callee_name=body.sip_data.name,
        record=body.record,
        amd=dataclasses.asdict(amd) if amd.enabled else None,
    )
    try:
        await svc.runtime.place_call(key.tenant_id, call_id)
    except CallRejected as exc:
        await _end_unplaced(store, call_id, exc.reason)
        raise Unavailable(
            "UPSTREAM_SERVICE_TIMEOUT", f"the SIP gateway did not place the call: {exc.reason}"
        ) from None
    except Exception:
        await _end_unplaced(store, call_id, "gateway error")
        raise
    return CallCreated(call_id=call_id, status="triggered", worker_url=None)


def amd_of(body: CallCreate) -> AmdSettings:
    """The call's answering-machine detection; VALIDATION_ERROR for a combination it refuses."""
    default = AmdSettings()
    try:
        return AmdSettings(
            mode=body.amd or default.mode,
            timeout_seconds=body.amd_timeout_seconds or default.timeout_seconds,
            asynchronous=bool(body.amd_async),
            on_machine=body.amd_on_machine or default.on_machine,
            message_url=body.amd_message_url or None,
        )
    except ValueError as exc:
        raise invalid_field("amd", str(exc)) from None


async def _end_unplaced(store: SqlStore, call_id: UUID, reason: str) -> None:
    """Close the row of a call that never left; a no-op when the gateway closed it already."""
    result = AttemptResult(outcome=Outcome.FAILED, ended_at=datetime.now(UTC), reason=reason)
    # No prospect update: a prospect linked to an API call (``prospect_id``) keeps its campaign state.
    await store.finish_attempt(call_id, result, None)


async def owned_call(store: SqlStore, tenant_id: UUID, call_id: UUID) -> CallView:
    found = await store.get_call(tenant_id, call_id)
    if found is None:
        raise NotFound("CALL_NOT_FOUND", "call not found")
    return found


def _duration(view: CallView) -> int | None:
    seconds = view.attempt.duration_seconds
    return round(seconds) if seconds is not None else None


def _has_callee(view: CallView) -> bool:
    """Whether the call has the seed's ``prospect``: a linked prospect, or a named outbound callee."""
    return view.attempt.prospect_id is not None or view.attempt.callee_name is not None


def _callee(view: CallView) -> str | None:
    """Who was called: the name the call was placed with (``sip_data.name``, the prospect's name at
    dial time), else the linked prospect's current name (rows written before the name was stored)."""
    return view.attempt.callee_name or view.prospect_name


def api_base(request: Request) -> str:
    """The API's URL as the client should use it: ``DIALER_PUBLIC_URL`` if set, else the request's."""
    configured: str | None = request.app.state.services.public_url
    return configured or str(request.base_url)


def _recording_url(view: CallView, base: str) -> str | None:
    """Where to GET the call's recording, while one is kept."""
    return recording_url(base, view.attempt.id) if view.attempt.recording_location else None


def _recording(view: CallView, base: str) -> Recording | None:
    a = view.attempt
    if not a.record and a.recording_at is None:
        return None
    return Recording(
        requested=a.record,
        url=_recording_url(view, base),
        made_at=a.recording_at,
        duration_seconds=a.recording_seconds,
        deleted_at=a.recording_deleted_at,
    )


def summary(view: CallView, base: str) -> CallSummary:
    """One call of a list; ``base`` is the API's URL (for ``recording_url``)."""
    a = view.attempt
    return CallSummary(
        id=a.id,
        agent_id=a.agent_id,
        client_id=a.tenant_id,
        campaign_id=a.campaign_id,
        phone_to=a.to_number,
        phone_from=a.from_number or None,
        status=call_status(a),  # type: ignore[arg-type]
        direction=a.direction,
        type="sip_call",
        created_at=a.created_at,
        duration=_duration(view),
        recording_url=_recording_url(view, base),
        is_call_successful_according_to_agent_criteria=None,  # only the voice worker could tell
        prospect=(
            Party(id=a.prospect_id, name=_callee(view), phone=a.to_number) if _has_callee(view) else None
        ),
        agent=Party(id=a.agent_id, name=view.agent_name) if a.agent_id else None,
        call_data=[],
        outcome=a.outcome.value if a.outcome else None,
        sip_code=a.sip_code,
        reason=a.reason,
        answered_by=a.answered_by,
    )


def detail(view: CallView, base: str) -> CallDetail:
    """One call's record; ``base`` is the API's URL (for ``recording_url``)."""
    a = view.attempt
    prospect = None
    if _has_callee(view):
        prospect = CallProspect(
            id=a.prospect_id,
            name=_callee(view),
            phone=a.to_number,
            prospect_data=[KeyValue(key=k, value=v) for k, v in view.prospect_custom.items()],
        )
    every = [Transfer.model_validate(entry) for entry in a.transfers]
    transfer = None
    if a.transfer_to or a.transfer_method or a.transfer_result:
        transfer = Transfer(
            to=a.transfer_to,
            method=a.transfer_method,
            result=a.transfer_result,
            sip_code=every[-1].sip_code if every else None,
            started_at=a.transfer_started_at,
            ended_at=a.transfer_ended_at,
        )
    return CallDetail(
        id=a.id,
        agent_id=a.agent_id,
        client_id=a.tenant_id,
        campaign_id=a.campaign_id,
        phone_from=a.from_number or None,
        phone_to=a.to_number,
        status=call_status(a),  # type: ignore[arg-type]
        direction=a.direction,
        call_triggered_at=a.created_at,
        answered_at=a.answered_at,
        ended_at=a.ended_at,
        extra_details={
            "duration": _duration(view),
            "recording_url": _recording_url(view, base),
            "sip_worker": a.sip_worker,
            "q850_cause": a.q850_cause,
        },
        provider_call_id=None,
        prospect=prospect,
        agent=CallAgent(id=a.agent_id, name=view.agent_name, client=AgentClient(name=view.tenant_name))
        if a.agent_id
        else None,
        outcome=a.outcome.value if a.outcome else None,
        sip_code=a.sip_code,
        reason=a.reason,
        pdd_ms=a.pdd_ms,
        transfer=transfer,
        transfers=every,
        worker_connected_at=a.worker_connected_at,
        recording_url=_recording_url(view, base),
        recording=_recording(view, base),
        answered_by=a.answered_by,
    )


async def live_call(svc: Services, key: Principal, call_id: UUID) -> CallView:
    """The tenant's call, still up, with a gateway to act on it."""
    view = await owned_call(svc.store, key.tenant_id, call_id)
    if view.attempt.ended_at is not None:
        raise Conflict("CALL_ENDED", "the call has ended")
    if svc.runtime is None:
        raise Unavailable("UPSTREAM_SERVICE_TIMEOUT", "the SIP gateway is not running in this process")
    return view


async def transfer_target(svc: Services, key: Principal, view: CallView, to_number: str | None) -> str:
    """The E.164 number to transfer to: the one given, else the agent's transfer number."""
    raw = to_number
    if raw is None and view.attempt.agent_id is not None:
        agent = await svc.store.tenant_agent(key.tenant_id, view.attempt.agent_id)
        raw = agent.transfer_number if agent else None
    if not raw:
        raise invalid_field("to_number", "required: the agent has no transfer number")
    try:
        return parse_phone(raw, await svc.store.tenant_region(key.tenant_id))
    except InvalidPhoneNumber as exc:
        raise invalid_field("to_number", exc.reason) from None


def rejected(exc: CallRejected) -> BadGateway | Unavailable:
    if isinstance(exc, GatewayUnavailable):  # nobody to ask (API-only node): 503, worth a retry
        return Unavailable("UPSTREAM_SERVICE_TIMEOUT", f"no SIP gateway answered: {exc.reason}")
    return BadGateway("UPSTREAM_SERVICE_ERROR", f"the SIP gateway refused: {exc.reason}")
