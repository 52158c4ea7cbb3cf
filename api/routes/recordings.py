"""Call recordings: download a call's WAV, and the tenant's retention (how long recordings are kept)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import SecretKey, Store, Svc
from api.errors import NotFound
from api.routes.calls import CallId
from api.schemas.calls import RecordingRetention
from api.services import calls as service

router = APIRouter(tags=["recordings"])

WAV = "audio/wav"


@router.get(
    "/calls/{id}/recording",
    response_class=StreamingResponse,
    responses={
        200: {"content": {WAV: {}}, "description": "the WAV: 8 kHz 16-bit, left callee, right worker"}
    },
)
async def get_recording(cid: CallId, key: SecretKey, svc: Svc) -> StreamingResponse:
    """The call's recording as a two-channel WAV (left the callee, right the voice worker)."""
    view = await service.owned_call(svc.store, key.tenant_id, cid)
    call = view.attempt
    location = call.recording_location
    if location is None:
        if call.recording_deleted_at is not None:
            why = "its recording was deleted by your retention setting"
        elif call.record:
            why = "its recording is not ready (the call is still up, or it was not answered)"
        else:
            why = "this call was not recorded"
        raise NotFound("RECORDING_NOT_FOUND", why)
    chunks = await svc.recordings.open(location) if svc.recordings is not None else None
    if chunks is None:
        raise NotFound("RECORDING_NOT_FOUND", "the recording is not reachable from this API node")
    headers = {"Content-Disposition": f'attachment; filename="{cid}.wav"'}
    return StreamingResponse(chunks, media_type=WAV, headers=headers)


@router.get("/settings/recordings", response_model=RecordingRetention)
async def get_retention(key: SecretKey, store: Store) -> RecordingRetention:
    """How long your call recordings are kept."""
    return RecordingRetention(retention_days=await store.recording_retention(key.tenant_id))


@router.patch("/settings/recordings", response_model=RecordingRetention)
async def set_retention(body: RecordingRetention, key: SecretKey, store: Store) -> RecordingRetention:
    """Keep your recordings ``retention_days`` days after the call (null: until deleted). Older ones are
    deleted by the next retention pass (hourly by default), their calls keep ``recording.deleted_at``."""
    await store.set_recording_retention(key.tenant_id, body.retention_days)
    return RecordingRetention(retention_days=await store.recording_retention(key.tenant_id))
