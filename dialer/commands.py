"""Call commands between nodes: API and scheduler nodes reach gateway nodes through the coordinator.

A gateway node announces itself in the ``gateways`` group and pops two queues: its own inbox
(``node:<id>``: hang-ups, transfers and wake-ups) and, while it has a free SIP line, the shared
``calls`` queue of new API calls, each of which the coordinator hands to one gateway only. Every command
that wants an answer names a reply queue, and the asker waits for it with a deadline: an API node
with no gateway alive answers at once, and one whose gateways do not answer gives up in bounded time.

A hang-up or transfer goes to every live gateway: the one holding the call acts and answers, the
others answer that they do not hold it. (The attempt row learns its SIP worker only when the call
ends, so the owner is found by asking; a few small messages per operator action.)

Messages are JSON and carry ids only: a transfer target is the one phone number that travels, in the
message body, never in a queue name or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

from api.runtime import ApiRuntime, CallRejected, GatewayUnavailable
from dialer.ports import Coordinator

log = logging.getLogger(__name__)

GATEWAYS = "gateways"  # presence group of nodes that run a SIP gateway
NEW_CALLS = "calls"  # shared queue: API calls waiting for a gateway with a free line
HEARTBEAT_SECONDS = 1.0  # how often a gateway re-announces itself...
PRESENCE_TTL = 5.0  # ...and how long after its last announcement it is taken for dead
POP_SECONDS = 1.0  # longest a gateway blocks on its queues before re-checking its free lines


def inbox(node_id: str) -> str:
    """The queue of commands addressed to one node."""
    return f"node:{node_id}"


@dataclass(frozen=True)
class Command:
    """What a gateway is asked: ``place``, ``hangup``, ``transfer`` or ``wake`` (no reply)."""

    kind: str
    reply_to: str | None = None
    tenant_id: str | None = None
    call_id: str | None = None
    to_number: str | None = None
    mode: str | None = None

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str) -> Command:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Reply:
    """A gateway's answer: whether it holds the call, and if it does, whether the action went through."""

    node: str
    held: bool
    ok: bool = False
    reason: str | None = None

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str) -> Reply:
        return cls(**json.loads(text))


class LocalGateway(ApiRuntime, Protocol):
    """A gateway node's own runtime (``dialer.runtime.Runtime``): the API's actions, and what it holds."""

    def holds_call(self, call_id: UUID) -> bool:
        """Whether one of this node's SIP workers has the call (outbound attempt or inbound call) up."""
        ...

    def has_free_line(self) -> bool:
        """Whether this node could take one more call now."""
        ...


class _Tasks:
    """Fire-and-forget tasks kept referenced until done, each failure logged."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        await asyncio.gather(*self._running, return_exceptions=True)


class GatewayClient:
    """The API's way to the SIP gateways when none runs in this process (an ``ApiRuntime``).

    ``timeout`` bounds each wait: a command not taken by a gateway within it is dropped unread, and
    the asker waits twice as long for the answer (a gateway that took it at the last moment still
    has ``timeout`` to act and answer).
    """

    def __init__(self, coordinator: Coordinator, *, timeout: float = 5.0) -> None:
        self.coordinator = coordinator
        self.timeout = timeout
        self._tasks = _Tasks()

    async def stop(self) -> None:
        await self._tasks.drain()

    # ---- ApiRuntime --------------------------------------------------------------------------------

    def campaigns_changed(self) -> None:
        self._tasks.spawn(self.wake_gateways(), "waking the gateways")

    async def wake_gateways(self) -> None:
        """Tell every gateway's dispatcher to refill now (a campaign started, resumed or grew)."""
        wake = Command("wake").encode()
        for node in await self.coordinator.members(GATEWAYS):
            await self.coordinator.push(inbox(node), wake, self.timeout)

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        await self._gateways()
        reply_to = _reply_queue()
        command = Command("place", reply_to, str(tenant_id), str(call_id))
        await self.coordinator.push(NEW_CALLS, command.encode(), self.timeout)
        async for reply in self._replies(reply_to, 1):
            if not reply.ok:
                raise CallRejected(reply.reason or "the SIP gateway did not place the call")
            return
        raise GatewayUnavailable(f"no SIP gateway took the call within {self.timeout:g} s")

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        await self._ask_owner(Command("hangup", tenant_id=str(tenant_id), call_id=str(call_id)))

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        command = Command("transfer", None, str(tenant_id), str(call_id), to_number, mode)
        await self._ask_owner(command)

    async def health(self) -> dict[str, dict[str, object]]:
        started = time.perf_counter()
        try:
            alive = len(await self.coordinator.members(GATEWAYS))
            reachable = True
        except Exception:
            log.warning("health: the coordinator did not answer", exc_info=True)
            alive, reachable = 0, False
        latency = round((time.perf_counter() - started) * 1000, 2)
        return {
            "redis": {"healthy": reachable, "latency_ms": latency},
            "gateways": {
                "healthy": alive > 0,
                "latency_ms": latency,
                "alive": alive,
                "gates_readiness": False,
            },
        }

    # ---- asking ------------------------------------------------------------------------------------

    async def _gateways(self) -> list[str]:
        gateways = await self.coordinator.members(GATEWAYS)
        if not gateways:
            raise GatewayUnavailable("no SIP gateway is running")
        return gateways

    async def _ask_owner(self, command: Command) -> None:
        """Send ``command`` to every live gateway; the holder of the call answers for it."""
        gateways = await self._gateways()
        reply_to = _reply_queue()
        message = Command(**{**asdict(command), "reply_to": reply_to}).encode()
        for node in gateways:
            await self.coordinator.push(inbox(node), message, self.timeout)
        answered = 0
        async for reply in self._replies(reply_to, len(gateways)):
            answered += 1
            if reply.held:
                if not reply.ok:
                    raise CallRejected(reply.reason or "the SIP gateway refused")
                return
        if answered == len(gateways):
            raise CallRejected("the call is not up on any SIP gateway")
        raise GatewayUnavailable(f"{len(gateways) - answered} SIP gateway(s) did not answer in time")

    async def _replies(self, reply_to: str, expected: int) -> AsyncIterator[Reply]:
        """Yield up to ``expected`` replies as they come, until ``2 * timeout`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.timeout
        for _ in range(expected):
            left = deadline - loop.time()
            popped = await self.coordinator.pop([reply_to], max(0.0, left)) if left > 0 else None
            if popped is None:
                return
            yield Reply.decode(popped[1])


def _reply_queue() -> str:
    return f"reply:{uuid4().hex}"


class GatewayServer:
    """Runs on a gateway node: keeps it listed as alive and carries out the commands sent to it."""

    def __init__(
        self, coordinator: Coordinator, node_id: str, local: LocalGateway, *, pop_seconds: float = POP_SECONDS
    ) -> None:
        self.coordinator = coordinator
        self.node_id = node_id
        self.local = local
        self.pop_seconds = pop_seconds
        self._tasks = _Tasks()
        self._running: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Announce this gateway, then serve its inbox and the shared calls queue."""
        await self.coordinator.announce(GATEWAYS, self.node_id, PRESENCE_TTL)
        loop = asyncio.get_running_loop()
        self._running = [
            loop.create_task(self._heartbeat(), name="gateway-heartbeat"),
            loop.create_task(self._serve(), name="gateway-commands"),
        ]

    async def stop(self) -> None:
        """Stop serving, leave the group and finish what was taken."""
        # The flag as well as the cancel: a client library may turn a cancelled read into its own
        # connection error, which the loop would otherwise log and retry.
        self._stopping = True
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.coordinator.withdraw(GATEWAYS, self.node_id)
        await self._tasks.drain()

    async def _heartbeat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.coordinator.announce(GATEWAYS, self.node_id, PRESENCE_TTL)
            except Exception:
                log.warning("could not announce this gateway", exc_info=True)

    async def _serve(self) -> None:
        mine = inbox(self.node_id)
        while not self._stopping:
            # A full gateway leaves new calls to the others; its own inbox is always read. (A call
            # taken just as the last line filled is refused: "no free SIP line", the API says 503.)
            queues = [mine, NEW_CALLS] if self.local.has_free_line() else [mine]
            try:
                popped = await self.coordinator.pop(queues, self.pop_seconds)
            except Exception:
                log.warning("could not read gateway commands", exc_info=True)
                await asyncio.sleep(self.pop_seconds)
                continue
            if popped is None:
                continue
            try:
                command = Command.decode(popped[1])
            except (ValueError, TypeError):
                log.error("dropped a malformed gateway command from %s", popped[0])
                continue
            if command.kind == "place":
                await self.handle(command)  # in turn: the free-line check above stays true
            else:
                self._tasks.spawn(self.handle(command), f"gateway command {command.kind}")

    async def handle(self, command: Command) -> None:
        """Carry out one command and answer it (public so tests can drive it without queues)."""
        if command.kind == "wake":
            self.local.campaigns_changed()
            return
        reply = await self._carry_out(command)
        if command.reply_to is not None:
            await self.coordinator.push(command.reply_to, reply.encode(), 2 * PRESENCE_TTL)

    async def _carry_out(self, command: Command) -> Reply:
        if command.tenant_id is None or command.call_id is None:
            return Reply(self.node_id, held=False, reason="malformed command")
        tenant_id, call_id = UUID(command.tenant_id), UUID(command.call_id)
        if command.kind != "place" and not self.local.holds_call(call_id):
            return Reply(self.node_id, held=False)
        try:
            if command.kind == "place":
                await self.local.place_call(tenant_id, call_id)
            elif command.kind == "hangup":
                await self.local.hangup_call(tenant_id, call_id)
            elif command.kind == "transfer" and command.to_number is not None:
                await self.local.transfer_call(tenant_id, call_id, command.to_number, command.mode or "auto")
            else:
                return Reply(self.node_id, held=True, reason=f"unknown command {command.kind!r}")
        except CallRejected as exc:
            return Reply(self.node_id, held=True, reason=exc.reason)
        except Exception:
            log.exception("gateway command %s for call %s failed", command.kind, call_id)
            return Reply(self.node_id, held=True, reason="the SIP gateway failed")
        return Reply(self.node_id, held=True, ok=True)
