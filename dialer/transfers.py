"""Every human transfer of one call, in order: the list a call record and its webhooks carry.

Pure: the store keeps the list in the call's row (``attempts.transfers``, JSON) and the webhook emitter
keeps one in memory per live call, and both change it only through ``started`` and ``settled``. An
entry is JSON-ready: ``to``, ``method`` (as asked, ``auto``/``refer``/``bridge``, until it settles as
``refer``, ``bridge`` or ``inbound_refer``), ``result`` (``pending``, ``completed``, ``bridged`` or
``failed (why)``), ``sip_code`` (the final one it saw: REFER's NOTIFY or the human leg's, None when
nothing was sent), ``started_at`` and ``ended_at`` (ISO 8601).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

PENDING = "pending"  # the result of a transfer under way

Entry = dict[str, Any]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def started(
    log: Sequence[Mapping[str, Any]] | None, to: str | None, method: str, at: datetime
) -> list[Entry]:
    """``log`` with a new pending transfer to ``to`` at its end."""
    entry = {
        "to": to,
        "method": method,
        "result": PENDING,
        "sip_code": None,
        "started_at": _iso(at),
        "ended_at": None,
    }
    return [*(dict(e) for e in log or ()), entry]


def settled(
    log: Sequence[Mapping[str, Any]] | None,
    *,
    to: str | None,
    method: str,
    result: str,
    sip_code: int | None,
    started_at: datetime | None,
    ended_at: datetime | None,
) -> list[Entry]:
    """``log`` with its pending transfer settled; with a new, settled entry when none is pending (the
    far end's own REFER, or a request refused before it started). A pending entry keeps its target
    unless ``to`` is given, and its start (when it was asked for) over ``started_at`` (when the SIP
    worker began)."""
    entries = [dict(e) for e in log or ()]
    if entries and entries[-1]["result"] == PENDING:
        last = entries[-1]
        last.update(method=method, result=result, sip_code=sip_code, ended_at=_iso(ended_at))
        if to is not None:
            last["to"] = to
        if last["started_at"] is None:
            last["started_at"] = _iso(started_at)
        return entries
    entry = {
        "to": to,
        "method": method,
        "result": result,
        "sip_code": sip_code,
        "started_at": _iso(started_at),
        "ended_at": _iso(ended_at),
    }
    return [*entries, entry]
