"""Who may call in: the trunk sources and imported numbers the SIP workers screen inbound INVITEs by.

The policy is rebuilt from storage every ``DIALER_SIP_INBOUND_REFRESH_SECONDS`` (and at start): the
addresses every trunk's host (and outbound proxy host) resolves to, each trunk's ``inbound_cidrs``,
the proxies of ``DIALER_SIP_INBOUND_PROXIES`` (Kamailio in front checks trunk sources itself), and
every number an inbound call is answered on. The workers then answer 403 to any other source and 404
to any other number by themselves, before a call exists (sip/screen.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from dialer.storage.records import TrunkRecord

log = logging.getLogger(__name__)

RESOLVE_SECONDS = 3.0  # a trunk host whose name server does not answer by then adds no address this round


class InboundSource(Protocol):
    """What the policy is built from (SqlStore has both)."""

    async def list_trunks(self) -> list[TrunkRecord]: ...

    async def inbound_numbers(self) -> set[str]: ...


def uri_host(uri: str) -> str:
    """The host of a SIP URI or host[:port] ("sip:proxy.example.net:5060;lr" -> proxy.example.net)."""
    rest = uri.strip().strip("<>")
    scheme, colon, after = rest.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        rest = after
    rest = rest.rpartition("@")[2].split(";", 1)[0].split("?", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.split(":", 1)[0] if rest.count(":") == 1 else rest


class Resolver:
    """Trunk host names to addresses, on two threads of its own (a slow name server never holds up
    the default executor, which storage uses), one lookup per name at a time. While a name's lookup
    is slow or failing, its last addresses stand (a name server hiccup does not close the door)."""

    def __init__(self, within: float = RESOLVE_SECONDS) -> None:
        self._within = within
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="inbound-dns")
        self._pending: dict[str, Future[set[str]]] = {}
        self._last: dict[str, set[str]] = {}

    async def addresses(self, host: str) -> set[str]:
        """Every address ``host`` (a name or an IP literal) resolves to; empty when it never did."""
        name = host.strip().strip("[]")
        try:
            return {str(ipaddress.ip_address(name))}
        except ValueError:
            pass
        future = self._pending.get(name)
        if future is None or future.done():
            future = self._pending[name] = self._pool.submit(_lookup, name)
        try:
            found = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self._within)
        except TimeoutError:
            return self._last.get(name, set())
        if not found and self._last.get(name, True):
            log.warning("trunk host %r does not resolve: no inbound calls from its addresses", name)
        self._last[name] = found
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lookup(name: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError, ValueError):
        return set()
    return {str(info[4][0]).split("%", 1)[0] for info in infos}


async def sources_of(trunk: TrunkRecord, resolver: Resolver) -> list[str]:
    """The networks a trunk's inbound INVITEs may come from: its host's (and outbound proxy host's)
    addresses and its ``inbound_cidrs``, canonical (an address is a /32 or /128)."""
    networks: set[str] = set(trunk.spec.inbound_cidrs)
    hosts = [trunk.spec.host]
    if trunk.spec.outbound_proxy:
        hosts.append(uri_host(trunk.spec.outbound_proxy))
    for host in hosts:
        networks |= await resolver.addresses(host)
    return sorted(str(ipaddress.ip_network(n, strict=False)) for n in networks)


async def trunk_networks(trunks: Iterable[TrunkRecord], resolver: Resolver) -> list[str]:
    """Every trunk's sources (``sources_of``) in one list."""
    networks: set[str] = set()
    for trunk in trunks:
        networks |= set(await sources_of(trunk, resolver))
    return sorted(networks)


async def kamailio_addresses(trunks: Iterable[TrunkRecord], resolver: Resolver) -> list[str]:
    """The trunks' sources as lines of Kamailio's permissions address file (group 1, any port, the
    trunk id as tag): deploy/kamailio/kamailio.cfg's TRUNKS_LIST."""
    lines = []
    for trunk in trunks:
        for network in await sources_of(trunk, resolver):
            net = ipaddress.ip_network(network)
            lines.append(f"1 {net.network_address} {net.prefixlen} 0 {trunk.id}")
    return lines


class InboundAccess:
    """Keeps the gateway's inbound policy in step with storage (``apply(networks, numbers)``)."""

    def __init__(
        self,
        source: InboundSource,
        apply: Callable[[list[str], list[str]], None],
        proxies: list[str],
        every: float,
    ) -> None:
        self._source = source
        self._apply = apply
        self._proxies = proxies
        self._every = every
        self._task: asyncio.Task[None] | None = None
        self._resolver = Resolver()

    async def refresh(self) -> None:
        """Read trunks and numbers now and hand the policy to the gateway (sent to workers if changed)."""
        networks = await trunk_networks(await self._source.list_trunks(), self._resolver)
        numbers = await self._source.inbound_numbers()
        self._apply(sorted(set(networks) | set(self._proxies)), sorted(numbers))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbound-access")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._resolver.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.refresh()
            except Exception:  # the last policy stays: a storage outage must not open or close the door
                log.exception("inbound policy refresh failed; the workers keep the last one")
