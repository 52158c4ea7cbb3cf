"""Gateway side of the voice-worker bridge: which WebSocket a call streams to and what ``start`` tells it.

The SIP worker process that owns the call does the streaming (sip/stream.py); the gateway only asks
its ``WorkerResolver`` for the agent's worker URL and sends the URL and the ``start`` metadata along
with the ``Dial`` or ``Answer``. customParameters are strings, as in Twilio Media Streams.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

from dialer.ports import CallRequest
from sip.events import InboundRoute
from sip.protocol import SIP_WORKER_SCHEMES, StreamSpec

WorkerResolver = Callable[[UUID], Awaitable[str | None]]  # agent id → ws(s):// or sip(s): URL; None: none
_SCHEMES = ("ws://", "wss://", *SIP_WORKER_SCHEMES)  # a SIP URI: a second SIP leg (sip/sip_worker.py)


class BridgeError(ValueError):
    """An agent's worker URL is neither a WebSocket URL nor a SIP URI this gateway can bridge to."""


def _text(value: Any) -> str:
    if isinstance(value, str | int | float | UUID) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def parameters(fixed: Mapping[str, Any], custom: Mapping[str, Any] | None) -> dict[str, str]:
    """``fixed`` (None values left out) plus the prospect's custom data; a custom key that clashes with
    a fixed one is kept as ``custom.<key>``. Non-string values are sent as JSON."""
    out = {key: _text(value) for key, value in fixed.items() if value is not None}
    for key, value in (custom or {}).items():
        out[f"custom.{key}" if key in out else str(key)] = _text(value)
    return out


def _checked(url: str) -> str:
    if not url.lower().startswith(_SCHEMES):
        raise BridgeError("a voice worker URL must start with ws://, wss://, sip: or sips:")
    return url


def outbound_stream(
    url: str, request: CallRequest, reconnects: int = 0, reconnect_backoff: float = 0.1
) -> StreamSpec:
    """The stream of an answered outbound call (``reconnects``: see StreamSpec)."""
    fixed = {
        "campaign_id": request.campaign_id,
        "prospect_id": request.prospect_id,
        "prospect_name": request.prospect_name,
        "direction": "outbound",
        "from": request.from_number,
        "to": request.to_number,
        # pipecat's Twilio CallData (and other Twilio bots) read these names
        "from_number": request.from_number,
        "to_number": request.to_number,
        "attempt_number": request.attempt_number,
        "attempt_id": request.attempt_id,
        "agent_id": request.agent_id,
    }
    return StreamSpec(
        _checked(url),
        str(request.tenant_id),
        str(request.attempt_id),
        parameters(fixed, request.custom),
        reconnects,
        reconnect_backoff,
    )


def inbound_stream(
    url: str,
    route: InboundRoute,
    call_id: UUID,
    called: str,
    caller: str | None,
    reconnects: int = 0,
    reconnect_backoff: float = 0.1,
) -> StreamSpec:
    """The stream of an answered inbound call on an imported number."""
    fixed = {
        "direction": "inbound",
        "from": caller,
        "to": called,
        "from_number": caller,
        "to_number": called,
        "agent_id": route.agent_id,
        "number_id": route.number_id,
    }
    return StreamSpec(
        _checked(url),
        str(route.tenant_id),
        str(call_id),
        parameters(fixed, None),
        reconnects,
        reconnect_backoff,
    )
