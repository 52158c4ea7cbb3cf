"""The OpenAPI document behind /docs: FastAPI's, plus what it cannot know by itself.

- the seed's examples on request bodies and 200 answers (api/seed_examples.py);
- the real error answers, all in the seed's body ``{"success": false, "error": {"code", "message"}}``,
  instead of FastAPI's 422 (which this API never sends: validation errors are 400s, see api/errors.py).

The two ways to send a key (``X-API-Key``, ``Authorization: Bearer``) are security schemes declared
in api.deps, so FastAPI lists them and /docs can "Authorize".

/docs (Swagger UI) and /redoc load their scripts and styles from this app, out of the fastapi-offline
package's copy of swagger-ui-dist and redoc: FastAPI's defaults fetch them from a CDN, which leaves a
blank page on a machine without Internet access (and lets a third party serve code to the console).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from api.seed_examples import REQUESTS, RESPONSES

ERROR_BODY = "ErrorBody"
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": ERROR_BODY,
    "required": ["success", "error"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["CAMPAIGN_NOT_FOUND"]},
                "message": {"type": "string", "examples": ["campaign not found"]},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}
_ERRORS = {
    "400": "Malformed or invalid request: BAD_REQUEST_FORMAT, VALIDATION_ERROR, validation_error, "
    "bad_request, BAD_REQUEST, WEB_CALLS_NOT_SUPPORTED, WEBHOOK_URL_NOT_ALLOWED, ...",
    "401": "UNAUTHORIZED (no key) or INVALID_API_KEY (unknown or revoked)",
    "403": "INSUFFICIENT_SCOPE: a publishable key (pk_live_) cannot do this",
    "404": "CAMPAIGN_NOT_FOUND, CALL_NOT_FOUND, AGENT_NOT_FOUND, PHONE_NUMBER_NOT_FOUND, ... "
    "(another tenant's resource looks the same as a missing one)",
    "409": "CONFLICT, INVALID_CAMPAIGN_TRANSITION, CALL_ENDED, NUMBER_ON_DNC_LIST, ...",
    "429": "RATE_LIMITED: this key spent its allowance on this route (see Retry-After)",
    "500": "INTERNAL_SERVER_ERROR or DATABASE_ERROR (never with a stack trace)",
    "502": "UPSTREAM_SERVICE_ERROR: the SIP gateway refused the call action",
    "503": "UPSTREAM_SERVICE_TIMEOUT: no SIP gateway could take the call action",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_GATEWAY_PREFIXES = ("/calls", "/webhook/")  # routes that hand call actions to the SIP gateway


#: Where the docs pages' assets are served from (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js).
DOCS_ASSETS = "/docs-assets"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    """/docs and /redoc, with every asset served by ``app`` itself (create the app with docs_url=None)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
    title = app.title
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,  # fonts from Google are a network fetch too
        )


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            complete(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> None:
    """Add errors and examples to every operation of ``schema``."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas[ERROR_BODY] = _ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _responses(operation, method, path, keyed="security" in operation)  # see api.deps
            _examples(operation, method, path)


def _responses(operation: dict[str, Any], method: str, path: str, keyed: bool) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    codes = ["500"]
    if keyed or "parameters" in operation or "requestBody" in operation:
        codes.append("400")
    if keyed:
        codes += ["401", "403", "404", "429"]
        if method != "get":
            codes.append("409")
        if method == "post" and path.startswith(_GATEWAY_PREFIXES):
            codes += ["502", "503"]
    for code in sorted(codes):
        if code in responses:
            continue
        answer: dict[str, Any] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_BODY}"}}},
        }
        if code == "429":
            answer["headers"] = _RETRY_AFTER
        responses[code] = answer


def _examples(operation: dict[str, Any], method: str, path: str) -> None:
    seed = {"summary": "The seed API reference's example", "value": None}
    if (body := REQUESTS.get((method, path))) is not None:
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            content["examples"] = {"seed": seed | {"value": body}}
    if (answer := RESPONSES.get((method, path))) is not None:
        for code in ("200", "201"):
            content = operation.get("responses", {}).get(code, {}).get("content", {}).get("application/json")
            if content is not None:
                content["examples"] = {"seed": seed | {"value": answer}}
