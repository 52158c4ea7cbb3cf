"""Schemathesis over the app's own OpenAPI schema: generated requests must never get a 5xx.

The app runs under uvicorn on loopback (real HTTP) with a real SQLite store, a tenant with a secret
key, a trunk, an agent, a DID, a campaign with a prospect and one call row, so that authenticated
routes are exercised past their auth check. Generated ids and numbers are swapped for those real ones
in about half of the cases (``point_at_real_rows``): otherwise every ``/{id}`` request and every body
naming an agent or a caller ID would stop at a 404. The runtime is the API suite's ``FakeRuntime``:
routes that place, transfer or hang up calls dial nothing.

Each response is checked for: no server error, a documented status code, a body that matches the
documented schema, and the documented content type. Bounded: a few examples per operation, no
shrinking of failures found (the failing request is printed as a curl command).
"""

from __future__ import annotations

import asyncio
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.ratelimit import Limit, RateLimits
from dialer.domain import CampaignStatus
from dialer.storage import CampaignSpec, SqlStore, TrunkSpec
from tests.api.conftest import DID, FakeRuntime

# ~35 s on a 2-core machine at 25. Derandomized, so CI runs the same cases every time; to search
# further, raise the count (DIALER_TEST_FUZZ_EXAMPLES=150: ~2.5 min; was clean, also on PostgreSQL).
EXAMPLES_PER_OPERATION = int(os.environ.get("DIALER_TEST_FUZZ_EXAMPLES", "25"))
pytestmark = pytest.mark.timeout(110 if EXAMPLES_PER_OPERATION <= 25 else 1200)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
UNLIMITED = RateLimits(general=Limit(10**6, 10**6), call_creation=Limit(10**6, 10**6))


@dataclass
class Seeded:
    """The real rows generated requests may point at, by the name of the field that holds them."""

    key: str
    path: dict[str, list[Any]]  # path parameter -> real values
    fields: dict[str, list[Any]]  # body or query field -> real values


def point_at_real_rows(case: schemathesis.Case, seeded: Seeded) -> None:
    """Swap some of the case's ids and numbers for real ones, chosen by a checksum of the case (so the
    same case always gets the same swaps, and schemathesis' explicit and coverage cases get them too)."""
    salt = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    containers = [(case.query, seeded.fields), (case.body, seeded.fields)]
    if not _destroys(case.operation):
        containers.append((case.path_parameters, seeded.path))
    bit = 0
    for values, real in containers:
        if not isinstance(values, dict):
            continue
        for name in [name for name in values if name in real]:
            if salt >> bit & 1:
                values[name] = real[name][(salt >> (bit + 1)) % len(real[name])]
            bit = (bit + 3) % 24


def _destroys(operation: schemathesis.APIOperation) -> bool:
    """Deleting or revoking a seeded row would leave every later operation without it (or the key)."""
    return operation.method.upper() == "DELETE" or operation.path.endswith("/revoke")


async def _seed(store: SqlStore) -> Seeded:
    tenant = await store.create_tenant("Fuzz", default_region="US")
    key_id, key = await store.create_api_key(tenant)
    trunk = await store.create_trunk(tenant, TrunkSpec(name="main", host="sip.example.net"))
    agent = await store.create_agent(tenant, "Receptionist", "wss://worker.example/stream")
    did = await store.import_number(tenant, DID, trunk, country="US", agent_id=agent)
    campaign = await store.create_campaign(
        tenant, CampaignSpec(name="Fuzz", agent_id=agent), status=CampaignStatus.DRAFT
    )
    await store.allocate_dids(campaign, [did])
    await store.add_prospects(campaign, [("Ann", "+14155552671", {})])
    prospects, _ = await store.list_prospects(campaign)
    call = await store.create_call(
        tenant, DID, "+14155552672", from_did_id=did, trunk_id=trunk, agent_id=agent
    )
    webhook, _secret = await store.create_webhook(
        tenant, "https://crm.example.com/hook", ["call.completed"], ""
    )
    prospect = str(prospects[0].id)
    ids = [str(v) for v in (campaign, call, trunk, agent, webhook, key_id)]
    path = {"id": ids, "pid": [prospect], "number": [DID], "phone": ["+14155552671"]}
    fields = {
        "agent_id": [str(agent)],
        "trunk_id": [str(trunk)],
        "campaign_id": [str(campaign)],
        "prospect_id": [prospect],
        "call_id": [str(call)],
        "from_numbers": [[DID]],
        "phone_number": [DID],
        "from_number": [DID],
    }
    return Seeded(key, path, fields)


class _Server:
    """uvicorn in a thread of its own (schemathesis is synchronous), stopped at teardown."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, lifespan="off", ws="none", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="schemathesis-api", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        assert self.server.started, "uvicorn did not start"
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[tuple[str, Seeded]]:
    """The app on a fresh SQLite file with its seeded rows, served on loopback: (base URL, rows)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'fuzz.db'}")
    store.migrate()
    seeded = asyncio.run(_seed(store))
    app = create_app(store, runtime=FakeRuntime(), limits=UNLIMITED)
    try:
        with _Server(app) as base_url:
            yield base_url, seeded
    finally:
        store.dispose()


@pytest.fixture
def seeded(fuzzed: tuple[str, Seeded]) -> Seeded:
    return fuzzed[1]


@pytest.fixture
def api_schema(fuzzed: tuple[str, Seeded]) -> schemathesis.BaseSchema:
    base_url, seeded = fuzzed
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.update(base_url=base_url, headers={"X-API-Key": seeded.key})
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case, seeded: Seeded) -> None:
    point_at_real_rows(case, seeded)
    case.call_and_validate(checks=CHECKS, timeout=10)
