"""In-process coordination: leases, token buckets, leadership, presence and queues for one process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dialer.ports import Coordinator, Lease, Slot

# ---- argument checks shared by every adapter (this one is the reference semantics) ----------------


def check_ttl(ttl: float) -> None:
    """A lease or leadership must last some time; zero or less is a caller bug."""
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")


def check_slots(slots: Sequence[Slot]) -> None:
    """A lease holds at least one resource, each once (one unit of each)."""
    if not slots:
        raise ValueError("acquire needs at least one slot")
    names = [slot.resource for slot in slots]
    if len(set(names)) != len(names):
        raise ValueError("each resource may appear only once in one acquire")


def check_bucket(rate: float, burst: int) -> None:
    """A bucket that never refills or never holds a token would block forever."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0 tokens/s, got {rate!r}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1, got {burst!r}")


def check_queues(queues: Sequence[str], wait: float) -> None:
    """A pop reads at least one queue and cannot wait a negative time."""
    if not queues:
        raise ValueError("pop needs at least one queue")
    if wait < 0:
        raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")


def any_disabled(slots: Sequence[Slot]) -> bool:
    """A slot with capacity <= 0 is always full: e.g. a DID whose max_concurrent_calls is 0 is off."""
    return any(slot.capacity <= 0 for slot in slots)


# ---- the adapter ----------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True)
class _Leader:
    holder: str
    expires_at: float


class MemoryCoordinator(Coordinator):
    """Coordination state in dicts, for one process; the embedded default.

    No method awaits between its check and its update, so calls from concurrent tasks on one
    event loop cannot interleave inside an operation: each one is atomic without locks.
    Expired entries are dropped lazily when the resource is next touched.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # resource -> {(holder, token): expires_at}; the token alone is unique, the holder is kept
        # so a lease forged with someone else's token is not taken for current.
        self._slots: dict[str, dict[tuple[str, int], float]] = {}
        self._last_token = 0
        self._buckets: dict[str, _Bucket] = {}
        self._leaders: dict[str, _Leader] = {}
        self._groups: dict[str, dict[str, float]] = {}  # group -> {member: expires_at}
        self._queues: dict[str, deque[tuple[float, str]]] = {}  # queue -> (expires_at, message)
        self._pushed = asyncio.Event()  # set (and replaced) on every push: wakes waiting pops

    def _live(self, resource: str, now: float) -> dict[tuple[str, int], float]:
        """The unexpired holds on ``resource`` (expired ones are dropped here)."""
        held = self._slots.get(resource)
        if held is None:
            return {}
        for member in [m for m, expires in held.items() if expires <= now]:
            del held[member]
        if not held:
            del self._slots[resource]
            return {}
        return held

    async def acquire(self, slots: Sequence[Slot], holder: str, ttl: float) -> Lease | None:
        check_slots(slots)
        check_ttl(ttl)
        if any_disabled(slots):
            return None
        now = self._clock()
        if any(len(self._live(slot.resource, now)) >= slot.capacity for slot in slots):
            return None
        self._last_token += 1
        token, expires_at = self._last_token, now + ttl
        for slot in slots:
            self._slots.setdefault(slot.resource, {})[(holder, token)] = expires_at
        return Lease(holder, tuple(slot.resource for slot in slots), token, expires_at)

    def _holds(self, lease: Lease, now: float) -> bool:
        member = (lease.holder, lease.token)
        return all(member in self._live(resource, now) for resource in lease.resources)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        check_ttl(ttl)
        now = self._clock()
        if not self._holds(lease, now):
            # Lost somewhere: drop what is left of it so its other slots free up now.
            self._drop(lease)
            return None
        expires_at = now + ttl
        for resource in lease.resources:
            self._slots[resource][(lease.holder, lease.token)] = expires_at
        return replace(lease, expires_at=expires_at)

    def _drop(self, lease: Lease) -> None:
        # Only this lease's own (holder, token) entry is removed: tokens are never reused, so a
        # newer lease on the same resource is never touched.
        for resource in lease.resources:
            held = self._slots.get(resource)
            if held is not None:
                held.pop((lease.holder, lease.token), None)
                if not held:
                    del self._slots[resource]

    async def release(self, lease: Lease) -> None:
        self._drop(lease)

    async def in_use(self, resource: str) -> int:
        return len(self._live(resource, self._clock()))

    async def holds(self, resource: str, token: int) -> bool:
        return any(held == token for _, held in self._live(resource, self._clock()))

    async def is_current(self, lease: Lease) -> bool:
        return self._holds(lease, self._clock())

    async def take_token(self, bucket: str, rate: float, burst: int) -> float:
        check_bucket(rate, burst)
        now = self._clock()
        state = self._buckets.get(bucket)
        if state is None:
            state = self._buckets[bucket] = _Bucket(float(burst), now)  # a new bucket starts full
        state.tokens = min(float(burst), state.tokens + max(0.0, now - state.at) * rate)
        state.at = now
        if state.tokens >= 1:
            state.tokens -= 1
            return 0.0
        return (1 - state.tokens) / rate

    async def lead(self, name: str, holder: str, ttl: float) -> bool:
        check_ttl(ttl)
        now = self._clock()
        current = self._leaders.get(name)
        if current is not None and current.holder != holder and current.expires_at > now:
            return False
        self._leaders[name] = _Leader(holder, now + ttl)
        return True

    async def resign(self, name: str, holder: str) -> None:
        current = self._leaders.get(name)
        if current is not None and current.holder == holder:
            del self._leaders[name]

    async def announce(self, group: str, member: str, ttl: float) -> None:
        check_ttl(ttl)
        self._groups.setdefault(group, {})[member] = self._clock() + ttl

    async def withdraw(self, group: str, member: str) -> None:
        self._groups.get(group, {}).pop(member, None)

    async def members(self, group: str) -> list[str]:
        now = self._clock()
        listed = self._groups.get(group, {})
        for member in [m for m, expires in listed.items() if expires <= now]:
            del listed[member]
        return sorted(listed)

    async def push(self, queue: str, message: str, ttl: float) -> None:
        check_ttl(ttl)
        now = self._clock()
        # Queues whose every message expired go (an abandoned reply queue is never popped again).
        for name in [q for q, waiting in self._queues.items() if max(e for e, _ in waiting) <= now]:
            del self._queues[name]
        self._queues.setdefault(queue, deque()).append((now + ttl, message))
        pushed, self._pushed = self._pushed, asyncio.Event()
        pushed.set()

    def _take(self, queues: Sequence[str]) -> tuple[str, str] | None:
        now = self._clock()
        for queue in queues:
            waiting = self._queues.get(queue)
            found = None
            while waiting and found is None:
                expires_at, message = waiting.popleft()
                if expires_at > now:
                    found = queue, message
            if waiting is not None and not waiting:
                del self._queues[queue]
            if found is not None:
                return found
        return None

    async def pop(self, queues: Sequence[str], wait: float) -> tuple[str, str] | None:
        check_queues(queues, wait)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # No await between the look and taking the event: a push cannot slip in unseen.
            found, pushed = self._take(queues), self._pushed
            left = deadline - loop.time()
            if found is not None or left <= 0:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pushed.wait(), left)
