"""/docs and /redoc render in a real browser with no network: every asset comes from the app itself.

Headless Chromium loads the pages from a live uvicorn on 127.0.0.1 with every other host unresolvable
(``--host-resolver-rules``), so a page that still fetched its script from a CDN would stay blank. The
rendered DOM must list every operation of the OpenAPI document. FastAPI's stock /docs (CDN assets),
loaded the same way, renders nothing: the check can tell the two apart.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.openapi import DOCS_ASSETS
from dialer.storage import SqlStore
from tests.api.conftest import serve
from tests.system_tools import needs, require

needs_chromium = needs("chromium", "chromium")

# Only loopback resolves: any fetch from elsewhere (a CDN, Google Fonts) fails as it would offline.
_OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    _OFFLINE,
)


async def rendered_dom(url: str, budget_ms: int = 15000) -> str:
    """The page's DOM after ``budget_ms`` of virtual time in headless Chromium (a fresh profile)."""
    chromium = require("chromium", "chromium")
    with tempfile.TemporaryDirectory(prefix="dialer-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            *_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, f"chromium exited {process.returncode}"
    return out.decode()


@pytest.fixture
async def docs_url(store: SqlStore) -> AsyncIterator[str]:
    async for url in serve(create_app(store)):
        yield url


def summaries(document: dict[str, Any]) -> set[str]:
    return {op["summary"] for ops in document["paths"].values() for op in ops.values()}


async def test_docs_pages_load_their_assets_from_the_app(docs_url: str) -> None:
    async with httpx.AsyncClient(base_url=docs_url) as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert sources and all(s.startswith(DOCS_ASSETS) for s in sources), (page, sources)
            for source in sources:
                asset = await client.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source


@needs_chromium
async def test_swagger_ui_renders_every_operation_offline(docs_url: str) -> None:
    async with httpx.AsyncClient(base_url=docs_url) as client:
        document = (await client.get("/openapi.json")).json()
    dom = await rendered_dom(f"{docs_url}/docs")
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert paths == set(document["paths"]), set(document["paths"]) ^ paths
    missing = {s for s in summaries(document) if s not in dom}
    assert not missing, missing


@needs_chromium
async def test_redoc_renders_every_operation_offline(docs_url: str) -> None:
    async with httpx.AsyncClient(base_url=docs_url) as client:
        document = (await client.get("/openapi.json")).json()
    dom = await rendered_dom(f"{docs_url}/redoc")
    missing = {s for s in summaries(document) if s not in dom}
    assert not missing, missing
    assert "/campaigns/{id}/schedule-start" in dom


@needs_chromium
async def test_stock_cdn_docs_stay_blank_offline() -> None:
    """The control: FastAPI's default page, whose script is on a CDN, renders no operation here."""
    app = FastAPI(title="stock")

    @app.get("/ping", summary="Ping The Stock App")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async for url in serve(app):
        dom = await rendered_dom(f"{url}/docs", budget_ms=5000)
        assert "cdn.jsdelivr.net" in dom  # it did point at the CDN ...
        assert "Ping The Stock App" not in dom and 'data-path="/ping"' not in dom  # ... and stayed blank
