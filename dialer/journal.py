"""The call journal: the writes that record what calls did, kept in order through a storage outage.

A call that rings, is answered and ends while the database is down has still happened: its record
must say so once the database is back, not "dialer lost track of the call". Every call-event write
(an inbound call's row, ringing/answer, the end with the retry decision) goes through ``CallJournal``:
applied at once while storage is up; when a write finds it down (``StorageUnavailable``), that write
and every later one wait, in order, in memory (up to ``memory_limit``) and then in a spool file
(JSON lines), and a drain task applies them as soon as the database answers again. A crash during the
outage loses what was only in memory; reconciliation then settles those calls as ``unknown``.

While writes wait, ``backlog`` is true: the dispatcher dials nothing (fail closed), and reconciliation
leaves the waiting calls alone (``pending``), so a real outcome is never replaced by ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from dialer.domain import AttemptResult, ProspectState, ProspectUpdate
from dialer.outcome import Outcome
from dialer.ports import DialStore, StorageUnavailable

log = logging.getLogger(__name__)

# The types a journal entry holds, by name, so the spool file can be read back.
_DATACLASSES: dict[str, type[Any]] = {cls.__name__: cls for cls in (AttemptResult, ProspectUpdate)}
_ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (Outcome, ProspectState)}

RETRY_FIRST_SECONDS = 0.2  # first retry of a write that found storage down; doubles up to the max
RETRY_MAX_SECONDS = 2.0  # so dialing resumes within ~2 s of the database coming back


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Enum):
        return {"$enum": type(value).__name__, "v": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$dc": type(value).__name__, "f": fields}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    if "$uuid" in value:
        return UUID(value["$uuid"])
    if "$enum" in value:
        return _ENUMS[value["$enum"]](value["v"])
    if "$dc" in value:
        return _DATACLASSES[value["$dc"]](**{k: _decode(v) for k, v in value["f"].items()})
    return {k: _decode(v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One call-event write: ``op`` is the DialStore method, ``call_id`` the call it is about."""

    op: str  # "create_call" | "call_progress" | "finish_attempt"
    call_id: UUID
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def to_line(self) -> str:
        data = {"op": self.op, "call": self.call_id, "a": self.args, "k": self.kwargs}
        return json.dumps(_encode(data)) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Entry:
        data = _decode(json.loads(line))
        return cls(data["op"], data["call"], tuple(data["a"]), data["k"])


class CallJournal:
    """Applies call-event writes in order, holding them while storage is down (see the module doc).

    ``spool`` is the overflow file (None: memory only, for tests); ``on_drained`` is called when a
    backlog has been applied (the dispatcher refills at once).
    """

    def __init__(
        self,
        store: DialStore,
        spool: Path | None,
        *,
        memory_limit: int = 1000,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.memory_limit = memory_limit
        self.on_drained = on_drained
        self._memory: deque[Entry] = deque()
        self._spooled = 0  # entries in the spool file, all newer than those in memory
        self._pending: dict[UUID, int] = {}  # call id -> entries waiting
        self._wake = asyncio.Event()
        self.down_since: float | None = None  # monotonic time the first write found storage down
        self.outages = 0
        self.applied_late = 0  # writes applied after waiting (for tests, logs and /health)

    # ---- what the rest of the dialer asks --------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Writes waiting for storage; non-zero means storage is (or just was) down."""
        return len(self._memory) + self._spooled

    def pending(self) -> set[UUID]:
        """Calls with writes still waiting: reconciliation must not settle them as lost."""
        return set(self._pending)

    async def create_call(self, call_id: UUID, *args: Any, **kwargs: Any) -> None:
        """``DialStore``-style ``create_call`` of a call whose id the gateway already gave it."""
        await self._write(Entry("create_call", call_id, args, kwargs | {"call_id": call_id}))

    async def call_progress(self, call_id: UUID, **kwargs: Any) -> None:
        await self._write(Entry("call_progress", call_id, (call_id,), kwargs))

    async def finish_attempt(
        self, call_id: UUID, result: AttemptResult, update: ProspectUpdate | None
    ) -> None:
        await self._write(Entry("finish_attempt", call_id, (call_id, result, update), {}))

    # ---- applying ---------------------------------------------------------------------------------

    async def _write(self, entry: Entry) -> None:
        if self.backlog == 0:
            try:
                await self._apply(entry)
                return
            except StorageUnavailable as exc:
                self._went_down(exc)
        self._hold(entry)

    async def _apply(self, entry: Entry) -> None:
        await getattr(self.store, entry.op)(*entry.args, **entry.kwargs)

    def _went_down(self, exc: Exception) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            log.error("storage unavailable (%s): call events wait in the journal, dialing stops", exc)

    def _hold(self, entry: Entry) -> None:
        self._pending[entry.call_id] = self._pending.get(entry.call_id, 0) + 1
        if (self._spooled == 0 and len(self._memory) < self.memory_limit) or self.spool is None:
            self._memory.append(entry)
        else:  # memory is full (or older entries are already spooled): keep the order on disk
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with self.spool.open("a") as out:
                out.write(entry.to_line())
                out.flush()
                os.fsync(out.fileno())
            self._spooled += 1
        self._wake.set()

    def _done(self, entry: Entry) -> None:
        left = self._pending.get(entry.call_id, 1) - 1
        if left:
            self._pending[entry.call_id] = left
        else:
            self._pending.pop(entry.call_id, None)

    def spill(self) -> int:
        """At shutdown: move what waits in memory to the front of the spool file, so a restart writes
        it (``load``); returns how many entries the file holds."""
        if self.spool is None or not self._memory:
            return self._spooled
        older = "".join(entry.to_line() for entry in self._memory)
        newer = self.spool.read_text() if self._spooled else ""
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.spool.with_suffix(".tmp")
        tmp.write_text(older + newer)
        tmp.replace(self.spool)
        self._spooled += len(self._memory)
        self._memory.clear()
        log.warning("journal: %d call events left for the next start in the spool file", self._spooled)
        return self._spooled

    def load(self) -> int:
        """Read a spool file left by an earlier run (its writes go first); returns how many."""
        if self.spool is None or not self.spool.exists():
            return 0
        lines = [line for line in self.spool.read_text().splitlines() if line.strip()]
        self._spooled = len(lines)
        for line in lines:
            entry = Entry.from_line(line)
            self._pending[entry.call_id] = self._pending.get(entry.call_id, 0) + 1
        if lines:
            log.warning("journal: %d call events spooled by an earlier run wait to be written", len(lines))
            self._wake.set()
        return len(lines)

    def _refill_from_spool(self) -> None:
        """Move the oldest spooled entries into memory (up to the limit), rewriting the rest."""
        assert self.spool is not None
        lines = [line for line in self.spool.read_text().splitlines() if line.strip()]
        take, keep = lines[: self.memory_limit], lines[self.memory_limit :]
        self._memory.extend(Entry.from_line(line) for line in take)
        if keep:
            tmp = self.spool.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            tmp.replace(self.spool)
        else:
            self.spool.unlink()
        self._spooled = len(keep)

    async def drain(self) -> None:
        """Apply every waiting write, oldest first, retrying while storage is down; returns when none
        is left."""
        delay = RETRY_FIRST_SECONDS
        while self.backlog:
            if not self._memory:
                self._refill_from_spool()
            entry = self._memory[0]
            try:
                await self._apply(entry)
            except StorageUnavailable as exc:
                self._went_down(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            self._memory.popleft()
            self._done(entry)
            self.applied_late += 1
            delay = RETRY_FIRST_SECONDS
        if self.down_since is not None:
            log.warning(
                "storage back: %d waiting call events written after %.1f s",
                self.applied_late,
                time.monotonic() - self.down_since,
            )
            self.down_since = None
            if self.on_drained is not None:
                self.on_drained()

    async def run(self) -> None:
        """The drain task: wakes when a write is held, applies the backlog, sleeps again."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # a write storage refuses for good (not an outage): keep the rest going
                log.exception("journal: a call event could not be written; dropped")
                with contextlib.suppress(IndexError):
                    self._done(self._memory.popleft())
                self._wake.set()
