"""Inbound calls on imported numbers: route each offered INVITE to its agent, answer or refuse, report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sip.events import InboundAnswered, InboundEnded, InboundEvent, InboundOffered, InboundRoute, MediaStats
from sip.inbound_policy import called_number
from sip.protocol import (
    RETRY_AFTER,
    Answer,
    Answered,
    Ended,
    Event,
    Offered,
    Reject,
    Rejected,
    StreamSpec,
    utc,
)
from sip.supervisor import WorkerProcess

log = logging.getLogger(__name__)

InboundRouter = Callable[[str], Awaitable[InboundRoute | None]]
InboundCallback = Callable[[InboundEvent], Awaitable[None] | None]
# (route, call id, called, caller) → where the answered call's audio streams, None: not bridged
InboundStreams = Callable[[InboundRoute, UUID, str, str | None], Awaitable[StreamSpec | None]]


@dataclass
class _Call:
    call_id: UUID
    called: str
    caller: str | None
    offered_at: datetime
    route: InboundRoute | None = None
    worker: WorkerProcess | None = None
    key: int = 0


class InboundDesk:
    """Decides on offered inbound calls and reports them through ``on_event``, on the asyncio loop.

    A known number is answered and handed to its route; an unknown one gets 404; while the gateway
    is not accepting calls (stopping) or the router fails, 503 with Retry-After.
    """

    def __init__(
        self,
        router: InboundRouter | None,
        max_call_seconds: float,
        accepting: Callable[[], bool],
        streams: InboundStreams | None = None,
    ) -> None:
        self.on_event: InboundCallback = lambda event: None
        self._router = router
        self._streams = streams
        self._max_call_seconds = max_call_seconds
        self._accepting = accepting
        self._calls: dict[tuple[str, int], _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def live(self) -> int:
        """Inbound calls offered and not ended yet."""
        return len(self._calls)

    def handle(self, worker: WorkerProcess, event: Event) -> bool:
        """Take a worker event if it is about an inbound call; False when it is not."""
        if isinstance(event, Rejected):  # pjsua had no free slot and answered 486 by itself
            log.warning("inbound call refused by %s with %d: no free line", worker.name, event.code)
            at = utc(event.at)
            call = _Call(uuid4(), called_number(event.called or ""), event.caller, at)
            self._emit(self._ended(call, worker.name, at, event.code, "no free line"))
        elif isinstance(event, Offered):
            call = _Call(
                uuid4(), called_number(event.called), event.caller, utc(event.at), None, worker, event.key
            )
            self._calls[(worker.name, event.key)] = call
            self._spawn(self._decide(worker, event.key, call))
        elif isinstance(event, Answered) and (worker.name, event.key) in self._calls:
            self._emit(InboundAnswered(self._calls[(worker.name, event.key)].call_id, utc(event.at)))
        elif isinstance(event, Ended) and (worker.name, event.key) in self._calls:
            call = self._calls.pop((worker.name, event.key))
            reason = f"{event.reason} ({event.limit})" if event.limit else event.reason
            self._emit(self._ended(call, worker.name, utc(event.at), event.code, reason, event))
        else:
            return False
        return True

    def call_id(self, worker: WorkerProcess, key: int) -> UUID | None:
        """The id of the live inbound call ``key`` of ``worker``."""
        call = self._calls.get((worker.name, key))
        return call.call_id if call is not None else None

    def locate(self, call_id: UUID) -> tuple[WorkerProcess, int] | None:
        """The worker and key of a live inbound call."""
        for call in self._calls.values():
            if call.call_id == call_id and call.worker is not None:
                return call.worker, call.key
        return None

    def transfer_origin(self, call_id: UUID) -> tuple[WorkerProcess, int, UUID | None, str] | None:
        """A live answered inbound call's worker, key, trunk id (None: unknown) and called number."""
        for call in self._calls.values():
            if call.call_id == call_id and call.worker is not None and call.route is not None:
                return call.worker, call.key, call.route.trunk_id, call.called
        return None

    def lost(self, worker: WorkerProcess, keys: set[int], reason: str) -> set[int]:
        """Report the inbound calls among ``keys`` of a dead worker as ended; returns the other keys."""
        now = datetime.now(UTC)
        rest = set()
        for key in sorted(keys):
            call = self._calls.pop((worker.name, key), None)
            if call is None:
                rest.add(key)
            else:
                self._emit(self._ended(call, worker.name, now, None, reason))
        return rest

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _decide(self, worker: WorkerProcess, key: int, call: _Call) -> None:
        try:
            route = await self._router(call.called) if self._router and call.called else None
            stream = (
                await self._streams(route, call.call_id, call.called, call.caller)
                if (route and self._streams)
                else None
            )
        except Exception:
            log.exception("inbound router or voice worker lookup failed; answering 503")
            worker.send(Reject(key, 503, RETRY_AFTER))
            return
        if not self._accepting():
            worker.send(Reject(key, 503, RETRY_AFTER))
        elif route is None:
            worker.send(Reject(key, 404))
        elif (worker.name, key) in self._calls:  # the caller may have hung up meanwhile
            call.route = route
            worker.send(Answer(key, self._max_call_seconds, stream.wire() if stream else None))
            self._emit(
                InboundOffered(call.call_id, call.called, call.caller, route, call.offered_at, worker.name)
            )

    @staticmethod
    def _ended(
        call: _Call,
        worker: str,
        at: datetime,
        code: int | None,
        reason: str | None,
        event: Ended | None = None,
    ) -> InboundEnded:
        return InboundEnded(
            call_id=call.call_id,
            called=call.called or None,
            caller=call.caller,
            route=call.route,
            at=at,
            sip_code=code,
            reason=reason,
            confirmed=bool(event and event.confirmed),
            q850_cause=event.cause if event else None,
            offered_at=call.offered_at,
            answered_at=utc(event.answered_at) if event and event.answered_at else None,
            worker=worker,
            media=MediaStats.from_wire(event.rtp) if event else None,
            transferred=bool(event and event.transferred),
        )

    def _emit(self, event: InboundEvent) -> None:
        result = self.on_event(event)
        if result is not None:
            self._spawn(result)

    def _spawn(self, awaitable: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("inbound call handling failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
