"""The call journal: writes held in order through an outage, in memory then in the spool file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from dialer.domain import AttemptResult, ProspectState, ProspectUpdate
from dialer.journal import CallJournal
from dialer.outcome import Outcome
from dialer.ports import StorageUnavailable

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class FlakyStore:
    """The three journal writes, recorded in order; raises StorageUnavailable while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.applied: list[tuple[str, UUID, Any]] = []

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("connection refused")

    async def create_call(self, *args: Any, call_id: UUID, **kwargs: Any) -> UUID:
        self._check()
        self.applied.append(("create_call", call_id, kwargs.get("direction")))
        return call_id

    async def call_progress(self, call_id: UUID, **kwargs: Any) -> bool:
        self._check()
        self.applied.append(("call_progress", call_id, kwargs["answered_at"]))
        return True

    async def finish_attempt(
        self, call_id: UUID, result: AttemptResult, update: ProspectUpdate | None
    ) -> bool:
        self._check()
        self.applied.append(("finish_attempt", call_id, (result, update)))
        return True


async def test_writes_wait_in_order_through_memory_and_spool_and_survive_a_restart(tmp_path: Path) -> None:
    store = FlakyStore()
    spool = tmp_path / "journal.jsonl"
    journal = CallJournal(store, spool, memory_limit=2)  # type: ignore[arg-type]
    up = uuid4()
    await journal.finish_attempt(up, AttemptResult(Outcome.BUSY, T0, 486), None)
    assert journal.backlog == 0 and len(store.applied) == 1, "written at once while storage is up"

    store.down = True
    calls = [uuid4() for _ in range(3)]
    result = AttemptResult(Outcome.ANSWERED, T0 + timedelta(seconds=9), 200, "Normal call clearing",
                           answered_at=T0 + timedelta(seconds=2))  # fmt: skip
    update = ProspectUpdate(ProspectState.COMPLETED, None, Outcome.ANSWERED)
    await journal.create_call(
        calls[0], uuid4(), from_number="", to_number="+442079460201", direction="inbound"
    )
    await journal.call_progress(calls[0], answered_at=T0 + timedelta(seconds=2))
    await journal.finish_attempt(calls[0], result, update)
    await journal.finish_attempt(calls[1], result, update)
    assert journal.backlog == 4 and journal.pending() == {calls[0], calls[1]}
    assert len(spool.read_text().splitlines()) == 2, "past the memory limit, on disk"

    # A restart during the outage: what was in memory goes to the front of the file, then is read back.
    assert journal.spill() == 4
    again = CallJournal(store, spool, memory_limit=2)  # type: ignore[arg-type]
    assert again.load() == 4 and again.pending() == {calls[0], calls[1]}
    await again.finish_attempt(calls[2], result, None)  # a newer write waits behind the old ones
    store.down = False
    await again.drain()
    assert again.backlog == 0 and again.pending() == set() and not spool.exists()
    assert [(op, call) for op, call, _ in store.applied[1:]] == [
        ("create_call", calls[0]),
        ("call_progress", calls[0]),
        ("finish_attempt", calls[0]),
        ("finish_attempt", calls[1]),
        ("finish_attempt", calls[2]),
    ]
    assert store.applied[1][2] == "inbound" and store.applied[2][2] == T0 + timedelta(seconds=2)
    assert store.applied[3][2] == (result, update), "records read back from the spool are equal"
