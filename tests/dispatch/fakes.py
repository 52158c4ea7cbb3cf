"""A call launcher that subclasses the real port and records what the dispatcher asked of it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from uuid import UUID

from dialer.ports import CallEnded, CallLauncher, CallRequest, LauncherFull


class FakeLauncher(CallLauncher):
    """Holds calls until the test ends them; tracks peak concurrency per caller ID and overall."""

    def __init__(self, lines: int = 100) -> None:
        super().__init__()
        self.lines = lines
        self.live: dict[UUID, CallRequest] = {}
        self.placed: list[CallRequest] = []
        self.peak = 0
        self.peak_per_from: Counter[str] = Counter()
        self.hung_up: list[UUID] = []

    async def place(self, request: CallRequest) -> None:
        if len(self.live) >= self.lines:
            raise LauncherFull()
        self.live[request.attempt_id] = request
        self.placed.append(request)
        self.peak = max(self.peak, len(self.live))
        on_this_did = sum(1 for r in self.live.values() if r.from_number == request.from_number)
        self.peak_per_from[request.from_number] = max(self.peak_per_from[request.from_number], on_this_did)

    async def hangup(self, attempt_id: UUID) -> None:
        self.hung_up.append(attempt_id)

    def capacity(self) -> int:
        return self.lines

    def live_attempts(self) -> set[UUID]:
        return set(self.live)

    def end(
        self,
        attempt_id: UUID,
        at: datetime,
        sip_code: int | None = 200,
        confirmed: bool = True,
        cause: int | None = None,
        answered_by: str | None = None,
    ) -> CallEnded:
        """End a live call as the far end would; returns the event (also sent through on_event)."""
        self.live.pop(attempt_id)
        event = CallEnded(attempt_id, at, sip_code, "test", confirmed, cause, answered_by=answered_by)
        self.on_event(event)
        return event
