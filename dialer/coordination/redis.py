"""Redis coordination: leases, token buckets, leadership, presence and queues shared by every node."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from dialer.coordination import keys
from dialer.coordination.memory import any_disabled, check_bucket, check_queues, check_slots, check_ttl
from dialer.ports import Coordinator, Lease, Slot

# Every check-and-set runs as one Lua script, so it is atomic on the server. Expiry is judged by
# the server clock (TIME) only: several nodes with drifting clocks still agree on who holds what.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Keep a slot set alive until its latest lease has expired (see keys.slot).
_EXPIRE_AFTER_LAST = """
local function expire_after_last(key, grace)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, tonumber(last[2]) + grace)
end
"""

# KEYS[1] = fence counter, KEYS[2..] = slot sets.
# ARGV[1] = holder, ARGV[2] = ttl ms, ARGV[3] = grace ms, ARGV[3 + i] = capacity of KEYS[1 + i].
_ACQUIRE = (
    _NOW
    + _EXPIRE_AFTER_LAST
    + """
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i + 2]) then
    return false
  end
end
local token = redis.call('INCR', KEYS[1])
local member = string.format('%s|%d', ARGV[1], token)
local expires = now + tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], expires, member)
  expire_after_last(KEYS[i], tonumber(ARGV[3]))
end
return {token, expires}
"""
)

# KEYS = slot sets of the lease. ARGV[1] = member, ARGV[2] = ttl ms, ARGV[3] = grace ms.
_RENEW = (
    _NOW
    + _EXPIRE_AFTER_LAST
    + """
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    -- lost somewhere: drop what is left of it so its other slots free up now
    for j = 1, #KEYS do redis.call('ZREM', KEYS[j], ARGV[1]) end
    return false
  end
end
local expires = now + tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', expires, ARGV[1])
  expire_after_last(KEYS[i], tonumber(ARGV[3]))
end
return expires
"""
)

# KEYS = slot sets of the lease. ARGV[1] = member. Only this exact member goes: tokens are never
# reused, so a newer lease on the same resource is never touched.
_RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0
"""

# KEYS[1] = slot set.
_IN_USE = (
    _NOW
    + """
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
"""
)

# KEYS[1] = a slot set. ARGV[1] = "|<token>": some unexpired member ends with it (members are holder|token).
_HOLDS = (
    _NOW
    + """
local suffix = ARGV[1]
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')) do
  if string.sub(member, -#suffix) == suffix then return 1 end
end
return 0
"""
)

# KEYS = slot sets of the lease. ARGV[1] = member.
_IS_CURRENT = (
    _NOW
    + """
for i = 1, #KEYS do
  local score = redis.call('ZSCORE', KEYS[i], ARGV[1])
  if not score or tonumber(score) <= now then return 0 end
end
return 1
"""
)

# KEYS[1] = bucket hash. ARGV[1] = rate/s, ARGV[2] = burst, ARGV[3] = grace ms.
# Returns the wait in seconds as a string (Lua numbers would be truncated to integers).
_TAKE_TOKEN = (
    _NOW
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = burst
if state[1] then
  local elapsed = math.max(0, now - tonumber(state[2])) / 1000
  tokens = math.min(burst, tonumber(state[1]) + elapsed * rate)
end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + tonumber(ARGV[3]))
return string.format('%.17g', wait)
"""
)

# KEYS[1] = leader key. ARGV[1] = holder, ARGV[2] = ttl ms. The key's own expiry is the hand-over.
_LEAD = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return 1
"""

# KEYS[1] = leader key. ARGV[1] = holder.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] = presence set. ARGV[1] = member, ARGV[2] = ttl ms, ARGV[3] = grace ms.
_ANNOUNCE = (
    _NOW
    + _EXPIRE_AFTER_LAST
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
expire_after_last(KEYS[1], tonumber(ARGV[3]))
return 0
"""
)

# KEYS[1] = presence set.
_MEMBERS = (
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
"""
)

# KEYS[1] = queue. ARGV[1] = message, ARGV[2] = ttl ms, ARGV[3] = grace ms. The entry carries its
# expiry by the server clock; the key lives as long as its longest-lived entry (never shortened).
_PUSH = (
    _NOW
    + """
local expires = now + tonumber(ARGV[2])
redis.call('RPUSH', KEYS[1], string.format('%d|', expires) .. ARGV[1])
local keep = expires - now + tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 0
"""
)


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds, never rounding a positive ttl down to 0."""
    return max(1, math.ceil(seconds * 1000))


def _member(lease: Lease) -> str:
    return f"{lease.holder}|{lease.token}"


class RedisCoordinator(Coordinator):
    """Coordination in Redis; the coordinator owns ``client`` and closes it in ``close()``.

    Construction does not connect: scripts are registered by SHA and loaded on first use.
    """

    def __init__(self, client: Redis, *, namespace: str = "dialer") -> None:
        self._client = client
        self._ns = namespace
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._in_use = client.register_script(_IN_USE)
        self._is_current = client.register_script(_IS_CURRENT)
        self._holds = client.register_script(_HOLDS)
        self._take_token = client.register_script(_TAKE_TOKEN)
        self._lead = client.register_script(_LEAD)
        self._resign = client.register_script(_RESIGN)
        self._announce = client.register_script(_ANNOUNCE)
        self._members = client.register_script(_MEMBERS)
        self._push = client.register_script(_PUSH)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "dialer") -> RedisCoordinator:
        """A coordinator with its own connection pool for ``url`` (connects lazily)."""
        return cls(Redis.from_url(url), namespace=namespace)

    def _slot_keys(self, resources: Sequence[str]) -> list[str]:
        return [keys.slot(self._ns, resource) for resource in resources]

    async def acquire(self, slots: Sequence[Slot], holder: str, ttl: float) -> Lease | None:
        check_slots(slots)
        check_ttl(ttl)
        if any_disabled(slots):
            return None
        resources = tuple(slot.resource for slot in slots)
        args: list[Any] = [holder, _ms(ttl), keys.GRACE_MS, *(slot.capacity for slot in slots)]
        reply = await self._acquire(keys=[keys.fence(self._ns), *self._slot_keys(resources)], args=args)
        if reply is None:
            return None
        token, expires_ms = reply
        return Lease(holder, resources, int(token), int(expires_ms) / 1000)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        check_ttl(ttl)
        args: list[Any] = [_member(lease), _ms(ttl), keys.GRACE_MS]
        reply = await self._renew(keys=self._slot_keys(lease.resources), args=args)
        if reply is None:
            return None
        return Lease(lease.holder, lease.resources, lease.token, int(reply) / 1000)

    async def release(self, lease: Lease) -> None:
        await self._release(keys=self._slot_keys(lease.resources), args=[_member(lease)])

    async def in_use(self, resource: str) -> int:
        return int(await self._in_use(keys=[keys.slot(self._ns, resource)]))

    async def holds(self, resource: str, token: int) -> bool:
        # The set holds at most the resource's capacity of live members: a scan of it is cheap.
        reply = await self._holds(keys=[keys.slot(self._ns, resource)], args=[f"|{token}"])
        return bool(int(reply))

    async def is_current(self, lease: Lease) -> bool:
        reply = await self._is_current(keys=self._slot_keys(lease.resources), args=[_member(lease)])
        return bool(int(reply))

    async def take_token(self, bucket: str, rate: float, burst: int) -> float:
        check_bucket(rate, burst)
        args: list[Any] = [repr(float(rate)), burst, keys.GRACE_MS]
        wait = float(await self._take_token(keys=[keys.bucket(self._ns, bucket)], args=args))
        return wait if wait > 0 else 0.0

    async def lead(self, name: str, holder: str, ttl: float) -> bool:
        check_ttl(ttl)
        reply = await self._lead(keys=[keys.leader(self._ns, name)], args=[holder, _ms(ttl)])
        return bool(int(reply))

    async def resign(self, name: str, holder: str) -> None:
        await self._resign(keys=[keys.leader(self._ns, name)], args=[holder])

    async def announce(self, group: str, member: str, ttl: float) -> None:
        check_ttl(ttl)
        await self._announce(keys=[keys.members(self._ns, group)], args=[member, _ms(ttl), keys.GRACE_MS])

    async def withdraw(self, group: str, member: str) -> None:
        await self._client.zrem(keys.members(self._ns, group), member)

    async def members(self, group: str) -> list[str]:
        reply = await self._members(keys=[keys.members(self._ns, group)])
        return sorted(_text(member) for member in reply)

    async def push(self, queue: str, message: str, ttl: float) -> None:
        check_ttl(ttl)
        await self._push(keys=[keys.queue(self._ns, queue)], args=[message, _ms(ttl), keys.GRACE_MS])

    async def pop(self, queues: Sequence[str], wait: float) -> tuple[str, str] | None:
        check_queues(queues, wait)
        names = {keys.queue(self._ns, queue): queue for queue in queues}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            left = deadline - loop.time()
            if left > 0:
                # BLPOP hands each entry to exactly one client; a script cannot block, so the
                # expiry check below is a second round trip (server clock, like every other check).
                popped = await self._client.blpop(list(names), timeout=max(0.01, round(left, 3)))
            else:
                popped = await self._pop_now(list(names))
            if popped is None:
                if left > 0:
                    continue  # BLPOP rounds its timeout; the loop ends on our own deadline
                return None
            key, entry = _text(popped[0]), _text(popped[1])
            expires, _, message = entry.partition("|")
            seconds, micros = await self._client.time()
            if int(expires) > seconds * 1000 + micros // 1000:
                return names[key], message

    async def _pop_now(self, names: list[str]) -> tuple[str, bytes] | None:
        for name in names:
            entry: bytes | None = await self._client.lpop(name)  # type: ignore[assignment]
            if entry is not None:
                return name, entry
        return None

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
