"""Coordination adapters (in-process or Redis) behind the ``Coordinator`` port, and their factory."""

from __future__ import annotations

from dialer.coordination.memory import MemoryCoordinator
from dialer.coordination.redis import RedisCoordinator
from dialer.ports import Coordinator

__all__ = ["MemoryCoordinator", "RedisCoordinator", "make_coordinator"]


def make_coordinator(redis_url: str | None, *, namespace: str = "dialer") -> Coordinator:
    """In-process coordination when ``redis_url`` is None (one node), else Redis (many nodes).

    Nothing connects here: the Redis client opens its first connection on first use.
    """
    if redis_url is None:
        return MemoryCoordinator()
    return RedisCoordinator.from_url(redis_url, namespace=namespace)
