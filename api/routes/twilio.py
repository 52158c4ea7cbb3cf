"""The subset of Twilio's REST API that bots written for Twilio call: read a call, hang it up.

pipecat's ``TwilioFrameSerializer`` ends a call on an ``EndFrame`` by POSTing ``Status=completed`` to
``{base_url}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with HTTP Basic auth; pointing
its ``base_url`` at this API makes that hang up our call. The ids are the ones our Media Streams
``start`` message carries: ``accountSid`` is the tenant id, ``callSid`` the call id. The Basic-auth
user is the tenant id (Twilio's AccountSid + AuthToken pair) or the API key's id (its API key SID +
secret pair); the password is always a secret API key (``sk_live_…``) of that tenant.

Answers are Twilio's shapes, not this API's: a Call resource, or ``{code, message, more_info, status}``
with Twilio's numeric codes (20003 bad credentials, 20404 not found, 20001 a parameter we do not
support, 21220 a call the gateway cannot act on, 20429 rate limited, 20503 no gateway). The routes are
left out of /openapi.json; docs/twilio.md documents them.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import Principal, services, spend
from api.errors import RateLimited
from api.runtime import CallRejected, GatewayUnavailable
from dialer.outcome import Outcome
from dialer.storage.directory import SECRET_SCOPE, hash_api_key
from dialer.storage.records import AttemptRecord

router = APIRouter(include_in_schema=False)

API_VERSION = "2010-04-01"
CALL_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid}}.json"
#: Status values that hang up (Twilio: ``completed`` ends a live call, ``canceled`` a ringing one).
HANGUP_STATUSES = frozenset({"completed", "canceled"})
_ENDED_STATUS = {
    Outcome.ANSWERED: "completed",
    Outcome.TRANSFERRED: "completed",
    Outcome.VOICEMAIL: "completed",
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no-answer",
}


class TwilioError(Exception):
    """An answer in Twilio's error shape: HTTP ``status`` and Twilio's numeric ``code``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> JSONResponse:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": "docs/twilio.md",
            "status": self.status,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _unauthorized(why: str) -> TwilioError:
    # Twilio asks for Basic credentials the same way; twilio-python and aiohttp read only the status.
    return TwilioError(401, 20003, f"Authenticate: {why}", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


async def _principal(request: Request, account_sid: str) -> Principal:
    """The caller's secret key from HTTP Basic auth, charged to its rate limit; the URL's account must
    be its tenant (another tenant's account answers 404, as Twilio does for what you cannot see)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise _unauthorized("send HTTP Basic auth: the tenant id (or key id) and a secret API key")
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed Basic credentials") from None
    found = await services(request).store.resolve_api_key_id(password) if password else None
    if found is None:
        raise _unauthorized("the API key is invalid or revoked")
    key_id, tenant_id, scope = found
    if user not in (str(tenant_id), str(key_id)):
        raise _unauthorized("the username is neither the key's tenant id nor the key's id")
    if scope != SECRET_SCOPE:
        raise TwilioError(403, 20003, "a publishable key (pk_live_) cannot do this; use a secret key")
    if account_sid != str(tenant_id):
        raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
    principal = Principal(tenant_id, scope, hash_api_key(password))
    try:
        await spend(request, principal)
    except RateLimited as exc:
        raise TwilioError(429, 20429, "Too Many Requests", exc.headers) from None
    return principal


async def _call(request: Request, key: Principal, call_sid: str) -> AttemptRecord:
    not_found = TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
    try:
        call_id = UUID(call_sid)
    except ValueError:
        raise not_found from None
    view = await services(request).store.get_call(key.tenant_id, call_id)
    if view is None:
        raise not_found
    return view.attempt


def _rfc2822(at: datetime | None) -> str | None:
    return email.utils.format_datetime(at) if at is not None else None


def twilio_status(call: AttemptRecord) -> str:
    """Twilio's name for where the call is: queued, ringing, in-progress, then how it ended."""
    if call.ended_at is not None:
        return _ENDED_STATUS.get(call.outcome, "failed") if call.outcome is not None else "failed"
    if call.answered_at is not None or call.status == "in-progress":
        return "in-progress"
    return "ringing" if call.ringing_at is not None else "queued"


def call_resource(call: AttemptRecord, status: str | None = None) -> dict[str, Any]:
    """A Twilio Call resource: the fields twilio-python's ``CallInstance`` reads, null where we have
    nothing to say (price, parent call, answered_by)."""
    sid, account = str(call.id), str(call.tenant_id)
    duration = round(call.duration_seconds) if call.duration_seconds is not None else None
    return {
        "sid": sid,
        "account_sid": account,
        "parent_call_sid": None,
        "date_created": _rfc2822(call.created_at),
        "date_updated": _rfc2822(call.ended_at or call.answered_at or call.ringing_at or call.created_at),
        "to": call.to_number,
        "to_formatted": call.to_number,
        "from": call.from_number,
        "from_formatted": call.from_number,
        "phone_number_sid": str(call.from_did_id) if call.from_did_id else None,
        "status": status or twilio_status(call),
        "start_time": _rfc2822(call.answered_at),
        "end_time": _rfc2822(call.ended_at),
        "duration": str(duration) if duration is not None else None,
        "price": None,
        "price_unit": None,
        "direction": "inbound" if call.direction == "inbound" else "outbound-api",
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "trunk_sid": str(call.trunk_id) if call.trunk_id else None,
        "uri": f"/{API_VERSION}/Accounts/{account}/Calls/{sid}.json",
        "subresource_uris": {},
    }


@router.get(CALL_PATH)
async def fetch_call(request: Request, account_sid: str, call_sid: str) -> JSONResponse:
    """Twilio's "fetch a Call": the call's record as a Call resource."""
    try:
        key = await _principal(request, account_sid)
        return JSONResponse(call_resource(await _call(request, key, call_sid)))
    except TwilioError as exc:
        return exc.response()


@router.post(CALL_PATH)
async def update_call(request: Request, account_sid: str, call_sid: str) -> JSONResponse:
    """Twilio's "update a Call", for ``Status=completed`` (or ``canceled``) only: hang it up.

    A call already over answers 200 with its final status (hanging up twice is harmless); any other
    parameter (``Url``, ``Twiml``, ...) answers 400 code 20001: this gateway runs no TwiML.
    """
    try:
        key = await _principal(request, account_sid)
        call = await _call(request, key, call_sid)
        form = await request.form()
        unsupported = sorted(name for name in form if name != "Status")
        status = form.get("Status")
        if unsupported or not isinstance(status, str) or status not in HANGUP_STATUSES:
            raise TwilioError(
                400,
                20001,
                "only Status=completed (or canceled) is supported: it hangs the call up"
                + (f"; unsupported parameters: {', '.join(unsupported)}" if unsupported else ""),
            )
        if call.ended_at is not None:
            return JSONResponse(call_resource(call))
        return JSONResponse(call_resource(await _hang_up(request, key, call), "completed"))
    except TwilioError as exc:
        return exc.response()


async def _hang_up(request: Request, key: Principal, call: AttemptRecord) -> AttemptRecord:
    """Hang the call up through the gateway holding it; its record as it is right after."""
    runtime = services(request).runtime
    if runtime is None:
        raise TwilioError(503, 20503, "the SIP gateway is not running in this process")
    try:
        await runtime.hangup_call(key.tenant_id, call.id)
    except GatewayUnavailable as exc:
        raise TwilioError(503, 20503, f"no SIP gateway answered: {exc.reason}") from None
    except CallRejected as exc:
        raise TwilioError(400, 21220, f"Call is not in-progress. Cannot hang up: {exc.reason}") from None
    return await _call(request, key, str(call.id))
