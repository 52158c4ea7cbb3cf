"""The Coordinator contract, run against every adapter (in-process and Redis)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest
from redis.asyncio import Redis

from dialer.coordination import MemoryCoordinator, RedisCoordinator, keys, make_coordinator
from dialer.ports import Coordinator, Lease, Slot

# Short enough to keep the Redis run fast (it sleeps for real), long enough that "still held"
# assertions keep a wide margin on a loaded CI machine.
SHORT = 0.2
PAST_SHORT = 0.3
LONG = 30.0


class FakeClock:
    """A clock the memory adapter reads; tests move it forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Store:
    """One adapter under test and how to let time pass for it."""

    coordinator: Coordinator
    advance: Callable[[float], Awaitable[None]]
    namespace: str | None = None


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def store(backend_url: str | None) -> AsyncIterator[Store]:
    if backend_url is None:
        clock = FakeClock()

        async def tick(seconds: float) -> None:
            clock.now += seconds

        yield Store(MemoryCoordinator(clock), tick)
        return
    # A fresh namespace per test: tests never see each other's keys and can delete exactly theirs.
    namespace = f"dialer-test-{uuid.uuid4().hex}"
    coordinator = make_coordinator(backend_url, namespace=namespace)
    try:
        yield Store(coordinator, asyncio.sleep, namespace)
    finally:
        await coordinator.close()
        cleaner = Redis.from_url(backend_url)
        try:
            stale = [key async for key in cleaner.scan_iter(match=f"{keys.prefix(namespace)}*")]
            if stale:
                await cleaner.delete(*stale)
        finally:
            await cleaner.aclose()


async def test_caps_never_exceeded_under_concurrent_acquire(store: Store) -> None:
    c = store.coordinator
    slot = Slot("did:a", 3)
    leases = await asyncio.gather(*(c.acquire([slot], f"node-{i}", LONG) for i in range(50)))
    assert sum(lease is not None for lease in leases) == 3
    assert await c.in_use("did:a") == 3


async def test_overlapping_multi_slot_acquires_respect_every_cap(store: Store) -> None:
    c = store.coordinator
    trunk = Slot("trunk:t", 3)
    dids = [Slot("did:x", 2), Slot("did:y", 2)]
    leases = await asyncio.gather(*(c.acquire([trunk, dids[i % 2]], f"n{i}", LONG) for i in range(40)))
    taken = [lease for lease in leases if lease is not None]
    assert len(taken) == 3
    assert await c.in_use("trunk:t") == 3
    assert await c.in_use("did:x") + await c.in_use("did:y") == 3
    assert max(await c.in_use("did:x"), await c.in_use("did:y")) == 2


async def test_multi_slot_acquire_is_all_or_nothing(store: Store) -> None:
    c = store.coordinator
    blocker = await c.acquire([Slot("did:full", 1)], "other", LONG)
    assert blocker is not None
    wanted = [Slot("trunk:t", 5), Slot("did:full", 1), Slot("campaign:c", 5)]
    assert await c.acquire(wanted, "me", LONG) is None
    assert await c.in_use("trunk:t") == 0
    assert await c.in_use("campaign:c") == 0
    await c.release(blocker)
    lease = await c.acquire(wanted, "me", LONG)
    assert lease is not None
    assert lease.resources == ("trunk:t", "did:full", "campaign:c")
    assert [await c.in_use(s.resource) for s in wanted] == [1, 1, 1]


async def test_zero_capacity_is_always_full_and_takes_nothing(store: Store) -> None:
    c = store.coordinator
    assert await c.acquire([Slot("trunk:t", 5), Slot("did:off", 0)], "me", LONG) is None
    assert await c.acquire([Slot("did:neg", -1)], "me", LONG) is None
    assert await c.in_use("trunk:t") == 0


async def test_release_frees_and_is_idempotent(store: Store) -> None:
    c = store.coordinator
    slot = Slot("did:a", 1)
    lease = await c.acquire([slot], "a", LONG)
    assert lease is not None
    assert await c.acquire([slot], "b", LONG) is None
    await c.release(lease)
    await c.release(lease)
    assert await c.in_use("did:a") == 0
    assert await c.acquire([slot], "b", LONG) is not None


async def test_release_of_expired_and_replaced_lease_keeps_new_holder(store: Store) -> None:
    c = store.coordinator
    slot = Slot("did:a", 1)
    old = await c.acquire([slot], "a", SHORT)
    assert old is not None
    await store.advance(PAST_SHORT)
    new = await c.acquire([slot], "b", LONG)
    assert new is not None
    await c.release(old)
    assert await c.renew(old, LONG) is None
    assert await c.in_use("did:a") == 1
    assert await c.is_current(new)
    assert await c.acquire([slot], "c", LONG) is None


async def test_same_holder_lease_is_fenced_by_token(store: Store) -> None:
    c = store.coordinator
    slot = Slot("did:a", 1)
    old = await c.acquire([slot], "node-1", SHORT)
    assert old is not None
    await store.advance(PAST_SHORT)
    new = await c.acquire([slot], "node-1", LONG)
    assert new is not None and new.token > old.token
    assert not await c.is_current(old)
    await c.release(old)
    assert await c.is_current(new)


async def test_expiry_frees_the_slot(store: Store) -> None:
    c = store.coordinator
    lease = await c.acquire([Slot("did:a", 1), Slot("trunk:t", 1)], "a", SHORT)
    assert lease is not None
    assert await c.in_use("did:a") == 1
    await store.advance(PAST_SHORT)
    assert await c.in_use("did:a") == 0
    assert await c.in_use("trunk:t") == 0
    assert not await c.is_current(lease)
    assert await c.acquire([Slot("trunk:t", 1)], "b", LONG) is not None


async def test_renew_extends_and_keeps_the_token(store: Store) -> None:
    c = store.coordinator
    slot = Slot("did:a", 1)
    lease = await c.acquire([slot], "a", 0.4)
    assert lease is not None
    await store.advance(0.25)
    renewed = await c.renew(lease, 1.0)
    assert renewed is not None
    assert (renewed.holder, renewed.resources, renewed.token) == (lease.holder, lease.resources, lease.token)
    assert renewed.expires_at > lease.expires_at
    await store.advance(0.3)  # past the first expiry, inside the renewed one
    assert await c.is_current(renewed)
    assert await c.is_current(lease)  # same holder and token: the old record names the same lease
    assert await c.acquire([slot], "b", LONG) is None


async def test_renew_of_a_lost_lease_returns_none(store: Store) -> None:
    c = store.coordinator
    expired = await c.acquire([Slot("did:a", 1)], "a", SHORT)
    released = await c.acquire([Slot("did:b", 1)], "a", LONG)
    assert expired is not None and released is not None
    await c.release(released)
    await store.advance(PAST_SHORT)
    assert await c.renew(expired, LONG) is None
    assert await c.renew(released, LONG) is None
    assert await c.in_use("did:a") == 0


async def test_ttl_must_be_positive(store: Store) -> None:
    c = store.coordinator
    lease = await c.acquire([Slot("did:a", 1)], "a", LONG)
    assert lease is not None
    with pytest.raises(ValueError):
        await c.acquire([Slot("did:b", 1)], "a", 0)
    with pytest.raises(ValueError):
        await c.renew(lease, 0)
    with pytest.raises(ValueError):
        await c.renew(lease, -1)
    with pytest.raises(ValueError):
        await c.lead("scheduler", "a", 0)


async def test_bad_slot_lists_are_rejected(store: Store) -> None:
    c = store.coordinator
    with pytest.raises(ValueError):
        await c.acquire([], "a", LONG)
    with pytest.raises(ValueError):
        await c.acquire([Slot("did:a", 2), Slot("did:a", 2)], "a", LONG)
    assert await c.in_use("did:a") == 0


async def test_tokens_strictly_increase(store: Store) -> None:
    c = store.coordinator
    tokens = []
    for i in range(5):
        lease = await c.acquire([Slot(f"did:{i % 2}", 10)], "a", LONG)
        assert lease is not None
        tokens.append(lease.token)
        await c.release(lease)
    assert tokens == sorted(set(tokens))
    concurrent = await asyncio.gather(*(c.acquire([Slot("did:z", 100)], "b", LONG) for _ in range(20)))
    later = [lease.token for lease in concurrent if lease is not None]
    assert len(set(later)) == 20
    assert min(later) > tokens[-1]


async def test_is_current_only_for_the_exact_live_lease(store: Store) -> None:
    c = store.coordinator
    lease = await c.acquire([Slot("did:a", 2), Slot("trunk:t", 2)], "a", LONG)
    assert lease is not None
    assert await c.is_current(lease)
    assert not await c.is_current(replace(lease, holder="b"))
    assert not await c.is_current(replace(lease, token=lease.token + 1000))
    assert not await c.is_current(replace(lease, resources=(*lease.resources, "did:other")))
    await c.release(lease)
    assert not await c.is_current(lease)


async def test_random_operations_match_a_model(store: Store) -> None:
    c = store.coordinator
    caps = {"did:a": 2, "did:b": 1, "trunk:t": 3}
    rng = random.Random(20240607)
    held: list[Lease] = []
    for step in range(150):
        if held and rng.random() < 0.4:
            await c.release(held.pop(rng.randrange(len(held))))
        else:
            names = rng.sample(sorted(caps), rng.randint(1, 3))
            fits = all(sum(n in lease.resources for lease in held) < caps[n] for n in names)
            lease = await c.acquire([Slot(n, caps[n]) for n in names], f"h{step}", LONG)
            assert (lease is not None) == fits
            if lease is not None:
                held.append(lease)
        for name, cap in caps.items():
            in_use = await c.in_use(name)
            assert in_use == sum(name in lease.resources for lease in held) <= cap


async def test_token_bucket_burst_then_wait_then_refill(store: Store) -> None:
    c = store.coordinator
    rate, burst = 2.0, 3
    assert [await c.take_token("trunk:t", rate, burst) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await c.take_token("trunk:t", rate, burst)
    assert 0 < wait <= 1 / rate
    assert await c.take_token("trunk:other", rate, burst) == 0.0  # buckets are independent
    await store.advance(0.6)  # > one token at 2/s
    assert await c.take_token("trunk:t", rate, burst) == 0.0
    assert await c.take_token("trunk:t", rate, burst) > 0


async def test_token_bucket_never_holds_more_than_burst(store: Store) -> None:
    c = store.coordinator
    assert await c.take_token("b", 20.0, 2) == 0.0
    await store.advance(0.5)  # would be 10 tokens without the cap
    assert [await c.take_token("b", 20.0, 2) for _ in range(2)] == [0.0, 0.0]
    assert await c.take_token("b", 20.0, 2) > 0


async def test_token_bucket_rejects_bad_parameters(store: Store) -> None:
    c = store.coordinator
    with pytest.raises(ValueError):
        await c.take_token("b", 0, 1)
    with pytest.raises(ValueError):
        await c.take_token("b", 1.0, 0)


async def test_leadership_is_exclusive_then_taken_over_after_ttl(store: Store) -> None:
    c = store.coordinator
    assert await c.lead("scheduler", "a", SHORT)
    assert not await c.lead("scheduler", "b", SHORT)
    assert await c.lead("other-job", "b", LONG)  # names are independent
    await store.advance(PAST_SHORT)
    assert await c.lead("scheduler", "b", LONG)
    assert not await c.lead("scheduler", "a", LONG)


async def test_leader_renews_and_resigns(store: Store) -> None:
    c = store.coordinator
    assert await c.lead("scheduler", "a", 0.4)
    await store.advance(0.25)
    assert await c.lead("scheduler", "a", 1.0)
    await store.advance(0.3)  # past the first ttl, inside the renewed one
    assert not await c.lead("scheduler", "b", LONG)
    await c.resign("scheduler", "b")  # not the leader: no effect
    assert not await c.lead("scheduler", "b", LONG)
    await c.resign("scheduler", "a")
    assert await c.lead("scheduler", "b", LONG)


async def test_presence_lists_live_members_until_their_ttl(store: Store) -> None:
    c = store.coordinator
    assert await c.members("gateways") == []
    await c.announce("gateways", "gw-b", SHORT)
    await c.announce("gateways", "gw-a", LONG)
    await c.announce("schedulers", "s-1", LONG)  # groups are independent
    assert await c.members("gateways") == ["gw-a", "gw-b"]
    await store.advance(PAST_SHORT)
    assert await c.members("gateways") == ["gw-a"], "gw-b stopped announcing: it expired"
    await c.announce("gateways", "gw-b", LONG)  # announcing again lists it again
    await c.withdraw("gateways", "gw-a")
    await c.withdraw("gateways", "nobody")  # not listed: no effect
    assert await c.members("gateways") == ["gw-b"]
    assert await c.members("schedulers") == ["s-1"]


async def test_presence_is_extended_by_announcing_again(store: Store) -> None:
    c = store.coordinator
    await c.announce("gateways", "gw", 0.4)
    await store.advance(0.25)
    await c.announce("gateways", "gw", 1.0)
    await store.advance(0.3)  # past the first ttl, inside the renewed one
    assert await c.members("gateways") == ["gw"]
    with pytest.raises(ValueError):
        await c.announce("gateways", "gw", 0)


async def test_queue_is_first_in_first_out_and_empty_pop_returns_none(store: Store) -> None:
    c = store.coordinator
    assert await c.pop(["q"], 0) is None
    for message in ("one", "two", "three|with a bar", '{"json": true}'):
        await c.push("q", message, LONG)
    popped = [await c.pop(["q"], 0) for _ in range(4)]
    assert popped == [("q", "one"), ("q", "two"), ("q", "three|with a bar"), ("q", '{"json": true}')]
    assert await c.pop(["q"], 0.05) is None, "waited its timeout, then nothing"


async def test_pop_reads_queues_in_the_order_given(store: Store) -> None:
    c = store.coordinator
    await c.push("shared", "for anyone", LONG)
    await c.push("inbox", "for me", LONG)
    assert await c.pop(["inbox", "shared"], 0) == ("inbox", "for me")
    assert await c.pop(["inbox", "shared"], 0) == ("shared", "for anyone")
    assert await c.pop(["other"], 0) is None


async def test_pop_waits_for_a_message_pushed_meanwhile(store: Store) -> None:
    c = store.coordinator

    async def later() -> None:
        await asyncio.sleep(0.1)
        await c.push("q", "late", LONG)

    pusher = asyncio.create_task(later())
    assert await c.pop(["q"], 5.0) == ("q", "late")
    await pusher


async def test_each_message_goes_to_exactly_one_popper(store: Store) -> None:
    c = store.coordinator
    sent = [f"m{i}" for i in range(12)]

    async def popper() -> list[str]:
        got = []
        for _ in range(len(sent)):  # bounded: never more pops than messages
            found = await c.pop(["jobs"], 0.3)
            if found is None:
                break
            got.append(found[1])
        return got

    poppers = [asyncio.create_task(popper()) for _ in range(4)]
    for message in sent:
        await c.push("jobs", message, LONG)
    received = [message for got in await asyncio.gather(*poppers) for message in got]
    assert sorted(received) == sorted(sent), "every message once, none twice"


async def test_a_message_not_popped_within_its_ttl_is_dropped(store: Store) -> None:
    c = store.coordinator
    await c.push("q", "stale", SHORT)
    await c.push("q", "fresh", LONG)
    await store.advance(PAST_SHORT)
    assert await c.pop(["q"], 0) == ("q", "fresh")
    assert await c.pop(["q"], 0) is None
    with pytest.raises(ValueError):
        await c.push("q", "x", 0)
    with pytest.raises(ValueError):
        await c.pop([], 0)
    with pytest.raises(ValueError):
        await c.pop(["q"], -1)


# ---- adapter-specific checks ---------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_keys_carry_ttls_except_the_fence(redis_url: str) -> None:
    namespace = f"dialer-test-{uuid.uuid4().hex}"
    coordinator = make_coordinator(redis_url, namespace=namespace)
    inspector = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await coordinator.acquire([Slot("did:a", 1)], "a", LONG) is not None
        await coordinator.take_token("trunk:t", 5.0, 2)
        assert await coordinator.lead("scheduler", "a", LONG)
        await coordinator.announce("gateways", "gw", LONG)
        await coordinator.push("inbox", "short-lived", SHORT)
        await coordinator.push("inbox", "long-lived", LONG)  # the queue lives as long as its longest
        await coordinator.push("inbox", "short again", SHORT)  # ...and a shorter push never cuts it
        found = {key async for key in inspector.scan_iter(match=f"{keys.prefix(namespace)}*")}
        assert found == {
            keys.fence(namespace),
            keys.slot(namespace, "did:a"),
            keys.bucket(namespace, "trunk:t"),
            keys.leader(namespace, "scheduler"),
            keys.members(namespace, "gateways"),
            keys.queue(namespace, "inbox"),
        }
        assert await inspector.pttl(keys.queue(namespace, "inbox")) > SHORT * 1000 + keys.GRACE_MS
        assert await inspector.pttl(keys.fence(namespace)) == -1
        for key in found - {keys.fence(namespace)}:
            assert 0 < await inspector.pttl(key) <= (LONG * 1000 + keys.GRACE_MS)
    finally:
        await coordinator.close()
        stale = [key async for key in inspector.scan_iter(match=f"{keys.prefix(namespace)}*")]
        if stale:
            await inspector.delete(*stale)
        await inspector.aclose()


async def test_make_coordinator_picks_the_adapter_without_connecting() -> None:
    memory = make_coordinator(None)
    assert isinstance(memory, MemoryCoordinator)
    await memory.close()
    # Port 1 has nothing listening: building (and closing) the adapter must not touch the network.
    remote = make_coordinator("redis://127.0.0.1:1/0", namespace="x")
    assert isinstance(remote, RedisCoordinator)
    await remote.close()


async def test_holds_tells_whether_a_token_is_still_live_on_a_resource(store: Store) -> None:
    c = store.coordinator
    short = await c.acquire([Slot("campaign:x", 10), Slot("did:a", 10)], "node-1", SHORT)
    long = await c.acquire([Slot("campaign:x", 10)], "node-2", LONG)
    assert short is not None and long is not None
    assert await c.holds("campaign:x", short.token) and await c.holds("did:a", short.token)
    assert not await c.holds("did:a", long.token), "a token is held only on its own resources"
    assert not await c.holds("campaign:x", max(short.token, long.token) + 1)
    await store.advance(PAST_SHORT)
    assert not await c.holds("campaign:x", short.token), "expired"
    assert await c.holds("campaign:x", long.token)
    await c.release(long)
    assert not await c.holds("campaign:x", long.token), "released"
