"""Call bodies and responses, as the seed's Calls section, plus our outcome and transfer details."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.amd import AmdAction, AmdMessageUrl, AmdMode

CallStatus = Literal["triggered", "in-progress", "completed", "failed"]


class SipData(BaseModel):
    to: str = Field(description="E.164 destination, 7 to 15 digits", examples=["+14155552671"])
    name: str = "Unknown"
    from_number: str | None = Field(None, description="one of your numbers; else the managed pool")


class CallCreate(BaseModel):
    """The seed's POST /calls/create body (its example's flattened ``sip_data.*`` keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    agent_id: UUID
    type: Literal["sip", "web"]
    sip_data: SipData | None = None
    prospect_id: UUID | None = None
    record: bool = Field(
        False,
        description="record the callee and the voice worker (two-channel WAV; docs/recordings.md). "
        "Check the consent rules where you call: the operator is responsible",
    )
    amd: AmdMode | None = Field(
        None, description="answering-machine detection, as a campaign's (docs/amd.md)"
    )
    amd_timeout_seconds: int | None = Field(None, ge=3, le=120)
    amd_async: bool | None = None
    amd_on_machine: AmdAction | None = None
    amd_message_url: AmdMessageUrl | None = None


class CallCreated(BaseModel):
    call_id: UUID
    status: str
    worker_url: str | None = None


class Party(BaseModel):
    id: UUID | None
    name: str | None
    phone: str | None = None


class KeyValue(BaseModel):
    key: str
    value: Any


class CallProspect(Party):
    prospect_data: list[KeyValue] = Field(default_factory=list)


class AgentClient(BaseModel):
    """The seed's ``agent.client``: the tenant's name; prospect groups are not a concept here (null)."""

    name: str | None
    base_prospect_group_id: UUID | None = None


class CallAgent(Party):
    """The seed's ``agent`` of a call record: id, name and the owning client."""

    client: AgentClient | None = None


class Transfer(BaseModel):
    """One human transfer of the call: where to, how (``auto``/``refer``/``bridge`` as asked, then
    ``refer``, ``bridge`` or ``inbound_refer`` once settled), and how it went (``pending``,
    ``completed``, ``bridged`` or ``failed (why)``)."""

    to: str | None
    method: str | None
    result: str | None
    sip_code: int | None = Field(
        None, description="the last SIP code it saw: REFER's final NOTIFY or the human leg's answer"
    )
    started_at: datetime | None = Field(None, description="when the transfer was asked for")
    ended_at: datetime | None = Field(
        None, description="when it settled: REFER accepted by the final NOTIFY, human bridged, or failed"
    )


class Recording(BaseModel):
    """A call's recording: asked for, kept (``url``), or deleted by the tenant's retention."""

    requested: bool = Field(description="the call was asked to be recorded")
    url: str | None = Field(None, description="where to GET it; null: none (yet), or deleted")
    made_at: datetime | None = None
    duration_seconds: float | None = None
    deleted_at: datetime | None = Field(None, description="when the tenant's retention deleted it")


class RecordingRetention(BaseModel):
    """How long the tenant's call recordings are kept (``GET``/``PATCH /settings/recordings``)."""

    model_config = ConfigDict(extra="forbid")
    retention_days: int | None = Field(
        ge=0,
        le=36_500,
        examples=[90],
        description="days a recording is kept after the call, then deleted; null: kept until deleted",
    )


class CallSummary(BaseModel):
    """One entry of GET /calls."""

    id: UUID
    agent_id: UUID | None
    client_id: UUID
    campaign_id: UUID | None
    phone_to: str
    phone_from: str | None
    status: CallStatus
    direction: str
    type: str
    created_at: datetime
    duration: int | None
    recording_url: str | None
    is_call_successful_according_to_agent_criteria: bool | None
    prospect: Party | None
    agent: Party | None
    call_data: list[KeyValue]
    outcome: str | None
    sip_code: int | None
    reason: str | None
    answered_by: str | None = Field(None, description="answering-machine verdict, when detection ran")


class CallList(BaseModel):
    """GET /calls: the one list shape (``data``, ``total``) plus the seed's ``calls``, the same items."""

    calls: list[CallSummary]
    total: int
    data: list[CallSummary]


class CallDetail(BaseModel):
    """GET /calls/{id}: the seed's shape plus outcome, SIP code, reason, post-dial delay and transfer."""

    id: UUID
    agent_id: UUID | None
    client_id: UUID
    campaign_id: UUID | None
    phone_from: str | None
    phone_to: str
    status: CallStatus
    direction: str
    call_triggered_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    extra_details: dict[str, Any]
    provider_call_id: str | None
    prospect: CallProspect | None
    agent: CallAgent | None
    outcome: str | None
    sip_code: int | None
    reason: str | None
    pdd_ms: float | None
    transfer: Transfer | None = Field(None, description="the last transfer (the last entry of `transfers`)")
    transfers: list[Transfer] = Field(
        default_factory=list, description="every transfer of the call, in order"
    )
    worker_connected_at: datetime | None = Field(
        None,
        description="when the voice worker took the answered call; none, or over 2 s after answer: abandoned",
    )
    recording_url: str | None = Field(
        None, description="GET it with your key: the call's WAV (left the callee, right the voice worker)"
    )
    recording: Recording | None = None
    answered_by: str | None = Field(
        None,
        description="answering-machine verdict (human, machine_start, machine_end_beep, machine_end_silence, "
        "machine_end_other, fax, unknown), when detection ran",
    )


class TransferRequest(BaseModel):
    to_number: str | None = Field(None, description="E.164; default: the agent's transfer number")
    mode: Literal["auto", "refer", "bridge"] = Field(
        "auto", description="refer: SIP REFER only; bridge: dial and join; auto: REFER, else bridge"
    )


class CallActionAccepted(BaseModel):
    success: bool = True
    call_id: UUID
    action: str


class HumanTransferTool(BaseModel):
    """The seed's ``human_transfer`` server-tool body (``{"to_number": "919182517283"}``) plus the call.

    ``call_id`` may instead come as the ``call_id`` query parameter (the tool's ``request.query``).
    """

    to_number: str | None = Field(
        None,
        examples=["919182517283"],
        description="E.164, or international digits without '+'; default: the agent's transfer number",
    )
    call_id: UUID | None = Field(None, description="The live call to transfer")


class HumanTransferResult(BaseModel):
    """What the voice worker's platform hands back to the AI as the tool's result."""

    success: bool = True
    call_id: UUID
    action: str = "transfer"
    result: str = "Transferring the caller to a human agent."
