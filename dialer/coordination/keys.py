"""Redis key names for coordination: one function per key, all under the namespace prefix."""

from __future__ import annotations

# Slack added to every computed key expiry. It only absorbs millisecond rounding between the
# score a script writes and the PEXPIRE it sets; correctness never depends on it, because every
# script prunes by the server clock before it reads.
GRACE_MS = 1000


def prefix(namespace: str) -> str:
    """The prefix of every key this namespace owns (``SCAN MATCH <prefix>*`` finds them all)."""
    return f"{namespace}:"


def fence(namespace: str) -> str:
    """The store-wide fencing counter, bumped by INCR on every successful acquire.

    TTL: none, on purpose. Tokens must only ever grow; if the counter vanished, new leases would
    reuse small tokens and a stale node could pass for the current holder.
    """
    return f"{namespace}:fence"


def slot(namespace: str, resource: str) -> str:
    """The sorted set of leases on one counted resource: member ``holder|token``, score = expiry ms.

    TTL: PEXPIREAT the latest lease's expiry + GRACE_MS, refreshed on every acquire and renew, so
    the set of a resource nobody uses any more (a deleted DID, a dead node's leftovers) vanishes.
    """
    return f"{namespace}:slot:{resource}"


def bucket(namespace: str, name: str) -> str:
    """A calls-per-second token bucket: hash ``tokens`` (float) and ``ts`` (server ms of last update).

    TTL: the time the bucket needs to refill to ``burst`` + GRACE_MS. A missing bucket reads as
    full, so past that point the hash carries no information and may go.
    """
    return f"{namespace}:bucket:{name}"


def leader(namespace: str, name: str) -> str:
    """The leadership of ``name``: a string holding the leader's id.

    TTL: the leadership ttl itself (SET PX, PEXPIRE on renewal); its expiry *is* the hand-over
    when a leader dies without resigning.
    """
    return f"{namespace}:leader:{name}"


def members(namespace: str, group: str) -> str:
    """The members of a presence group: sorted set, member = node id, score = expiry ms.

    TTL: PEXPIREAT the latest member's expiry + GRACE_MS, refreshed on every announce, so a group
    whose nodes all stopped announcing vanishes.
    """
    return f"{namespace}:members:{group}"


def queue(namespace: str, name: str) -> str:
    """A message queue (list, RPUSH/BLPOP); each entry is ``<expiry ms>|<message>``.

    TTL: the longest expiry of any entry in it + GRACE_MS, extended (never shortened) on push, so a
    queue nobody pops (a node that died, an abandoned reply) vanishes; expired entries still in a live
    queue are skipped by whoever pops them.
    """
    return f"{namespace}:queue:{name}"
