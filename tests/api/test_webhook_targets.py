"""The SSRF guard on webhook URLs: refused at subscription and again at delivery, unless allowed."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest

from api.app import create_app
from dialer.metrics import Metrics
from dialer.storage import SqlStore
from dialer.webhook_delivery import WebhookSender
from dialer.webhook_targets import TargetRefused, WebhookTargets, is_private
from dialer.webhooks import WebhookEmitter
from tests.api.conftest import ROOMY, FakeRuntime, Tenant, assert_error, make_tenant, serve
from tests.api.webhook_receiver import Receiver, eventually, run_receiver

REFUSED = [
    "http://127.0.0.1:6379/",
    "http://localhost/hook",  # a name: refused for what it resolves to
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://10.0.0.5/admin",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # shared address space (carrier NAT)
    "http://0.0.0.0:8080/",
    "http://224.0.0.1/",
    "https://user:pass@[::1]:8443/hook",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for running in run_receiver(Receiver()):
        yield running


@pytest.fixture
async def guarded(store: SqlStore) -> AsyncIterator[Tenant]:
    """A tenant of an API with the default policy (no private webhook URLs)."""
    async for url in serve(create_app(store, runtime=FakeRuntime(), limits=ROOMY)):
        async for tenant in make_tenant(store, url):
            yield tenant


@pytest.mark.parametrize("url", REFUSED)
async def test_subscribing_a_private_address_is_refused(guarded: Tenant, url: str) -> None:
    response = await guarded.client.post("/webhooks", json={"url": url, "events": ["call.completed"]})
    error = assert_error(response, 400, "WEBHOOK_URL_NOT_ALLOWED")
    assert "DIALER_WEBHOOK_ALLOW_PRIVATE" in str(error["message"])
    assert (await guarded.client.get("/webhooks")).json()["data"] == []


async def test_unresolvable_hosts_and_public_addresses(guarded: Tenant) -> None:
    unknown = {"url": "https://no-such-host.invalid/hook", "events": ["call.completed"]}
    assert_error(await guarded.client.post("/webhooks", json=unknown), 400, "WEBHOOK_URL_UNRESOLVABLE")
    # A public address literal needs no DNS and is accepted (nothing is sent: no event happens).
    public = {"url": "https://93.184.215.14/hooks/dialer", "events": ["call.completed"]}
    response = await guarded.client.post("/webhooks", json=public)
    assert response.status_code == 201, response.text


async def test_allowing_private_networks(store: SqlStore, receiver: Receiver) -> None:
    async for url in serve(
        create_app(store, runtime=FakeRuntime(), limits=ROOMY, webhook_allow_private=True)
    ):
        async for tenant in make_tenant(store, url):
            body = {"url": receiver.url, "events": ["campaign.paused"]}
            assert (await tenant.client.post("/webhooks", json=body)).status_code == 201


async def test_delivery_checks_again_and_sends_nothing_to_a_private_address(
    store: SqlStore, acme: Tenant, receiver: Receiver
) -> None:
    # Stored as if it had passed the check earlier (a name whose DNS now points inside).
    hook, _secret = await store.create_webhook(acme.id, receiver.url, ["campaign.paused"])
    metrics = Metrics()
    emitter = WebhookEmitter(WebhookSender(store, metrics, retry_delays=(0.01,), timeout=0.5))
    await emitter.start()
    try:
        emitter.emit("campaign.paused", {}, tenant_id=acme.id)

        async def failed() -> bool:
            rows, _ = await store.list_deliveries(hook)
            return bool(rows) and rows[0].status == "failed"

        await eventually(failed)
    finally:
        await emitter.stop()
    [row], _ = await store.list_deliveries(hook)
    assert row.attempts == 2 and row.http_status is None
    assert row.last_error is not None and row.last_error.startswith("WEBHOOK_URL_NOT_ALLOWED")
    assert receiver.received == [], "not one request reached the private address"


async def test_delivery_goes_to_the_checked_address_with_the_names_host(
    store: SqlStore, acme: Tenant, receiver: Receiver
) -> None:
    named = receiver.url.replace("127.0.0.1", "localhost")
    receiver.secret = (await store.create_webhook(acme.id, named, ["campaign.paused"]))[1]
    sender = WebhookSender(store, timeout=0.5, targets=WebhookTargets(allow_private=True))
    emitter = WebhookEmitter(sender)
    await emitter.start()
    try:
        emitter.emit("campaign.paused", {"n": 1}, tenant_id=acme.id)
        await eventually(lambda: len(receiver.received) == 1)
    finally:
        await emitter.stop()
    [got] = receiver.received
    assert got.signature_ok and got.headers["host"] == named.split("/")[2]


async def test_a_pinned_target_keeps_the_name_for_host_and_tls() -> None:
    target = await WebhookTargets(allow_private=True).check("https://u:p@localhost:8443/h?q=1")
    assert target.host == "localhost" and target.host_header == "localhost:8443"
    assert ipaddress.ip_address(target.address).is_loopback
    literal = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    assert target.pinned_url() == f"https://u:p@{literal}:8443/h?q=1"
    with pytest.raises(TargetRefused) as refused:
        await WebhookTargets().check("https://u:p@localhost:8443/h?q=1")
    assert refused.value.code == "WEBHOOK_URL_NOT_ALLOWED"


def test_public_addresses_are_not_private() -> None:
    for address in ("93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"):
        assert not is_private(ipaddress.ip_address(address)), address
    for address in ("127.0.0.2", "169.254.0.1", "::", "ff02::1", "198.51.100.7", "::ffff:10.1.1.1"):
        assert is_private(ipaddress.ip_address(address)), address
