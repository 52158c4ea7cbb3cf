"""Per-key, per-route token buckets behind the API's 429 ``RATE_LIMITED`` answers.

In-process (``TokenBuckets``) by default; ``SharedBuckets`` keeps them in the coordination store
(Redis when ``DIALER_REDIS_URL`` is set) so that every API replica spends from the same bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dialer.ports import Coordinator


@dataclass(frozen=True)
class Limit:
    """``per_minute`` tokens refill evenly over a minute; ``burst`` is the bucket's size."""

    per_minute: float
    burst: int


@dataclass(frozen=True)
class RateLimits:
    """The allowances per route class (the seed: general 100/min burst 20, call creation 20/min burst 5)."""

    general: Limit = Limit(100, 20)
    call_creation: Limit = Limit(20, 5)


class TokenBuckets:
    """Token buckets keyed by any string; ``take`` answers 0 when allowed, else seconds to wait.

    In-process: each API replica counts on its own. There is one bucket per key and route, so their
    number is bounded by live keys x routes.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        # Routes run on the event loop, but sync dependencies run in threads: guard the dict.
        self._lock = threading.Lock()

    def take(self, key: str, limit: Limit) -> float:
        now = self._clock()
        rate = limit.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate if rate > 0 else math.inf

    def __len__(self) -> int:
        return len(self._buckets)


class SharedBuckets:
    """Token buckets in the coordinator (``Coordinator.take_token``): shared by all API replicas.

    Keys are ``ratelimit:<key hash>:<method>:<route>``; the Redis key and its TTL are defined in
    dialer/coordination/keys.py (``bucket``).
    """

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def take(self, key: str, limit: Limit) -> float:
        return await self.coordinator.take_token(f"ratelimit:{key}", limit.per_minute / 60.0, limit.burst)
