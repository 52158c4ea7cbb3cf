"""The OpenAPI document behind /docs: FastAPI's, plus what it cannot know by itself.

- the seed's examples on request bodies and 200 answers, and ours on our routes (api/seed_examples.py);
- each route's own error answers, one example per code it can give, all in the seed's body
  ``{"success": false, "error": {"code", "message"}}`` (api/error_codes.py lists them), instead of
  FastAPI's 422 (which this API never sends: validation errors are 400s, see api/errors.py).

The two ways to send a key (``X-API-Key``, ``Authorization: Bearer``) are security schemes declared
in api.deps, so FastAPI lists them and /docs can "Authorize".

/docs (Swagger UI) and /redoc load their scripts and styles from this app, out of the fastapi-offline
package's copy of swagger-ui-dist and redoc: FastAPI's defaults fetch them from a CDN, which leaves a
blank page on a machine without Internet access (and lets a third party serve code to the console).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute

from api import error_codes
from api.deps import require_secret
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
                "code": {"type": "string", "description": "one of docs/errors.md's codes"},
                "message": {"type": "string", "description": "what is wrong, every field at fault named"},
                "details": {
                    "type": "array",
                    "description": "VALIDATION_ERROR: one entry per field at fault",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        },
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


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


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Serve the completed document at /openapi.json (built once, on first request).

    ``routes`` are the included routers' own routes, where each route's dependencies can be read.
    """

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            complete(schema, secret_routes(routes))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def secret_routes(routes: Sequence[BaseRoute]) -> set[tuple[str, str]]:
    """(method, path) of the routes that take a secret key only (``require_secret`` among their deps)."""
    found = set()
    for route in routes:
        if isinstance(route, APIRoute) and _depends_on(route.dependant, require_secret):
            found |= {(method.lower(), route.path) for method in route.methods or ()}
    return found


def _depends_on(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def complete(schema: dict[str, Any], secret: set[tuple[str, str]]) -> None:
    """Add errors and examples to every operation of ``schema``."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas[ERROR_BODY] = _ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            codes = route_codes(operation, method, path, (method, path) in secret)
            _responses(operation, codes, method, path, _body_schema(operation, schemas))
            _examples(operation, method, path)


def route_codes(operation: dict[str, Any], method: str, path: str, secret: bool) -> list[str]:
    """Every error code the operation can answer with: derived from the route, plus its own."""
    codes = list(error_codes.ALWAYS)
    if "parameters" in operation or "requestBody" in operation:
        codes += error_codes.WITH_INPUT
    if "security" in operation:  # see api.deps
        codes += error_codes.KEYED
    if secret:
        codes += error_codes.SECRET
    codes += error_codes.ROUTES.get((method, path), ())
    return list(dict.fromkeys(codes))


def _body_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body's schema, its $ref resolved; None without a JSON body."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    body: dict[str, Any] = content.get("schema", {})
    if "$ref" in body:
        body = schemas[body["$ref"].rsplit("/", 1)[-1]]
    return body


def _example(code: str, method: str, path: str, body_schema: dict[str, Any] | None) -> dict[str, Any]:
    if code == "VALIDATION_ERROR":
        return error_codes.validation_example(path, body_schema)
    return error_codes.example_body(code, (method, path))


def _responses(
    operation: dict[str, Any], codes: list[str], method: str, path: str, body: dict[str, Any] | None
) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    by_status: dict[str, list[str]] = {}
    for code in codes:
        by_status.setdefault(str(error_codes.CODES[code].status), []).append(code)
    for status, group in sorted(by_status.items()):
        answer: dict[str, Any] = {
            "description": "\n".join(f"- `{c}`: {error_codes.CODES[c].meaning}" for c in group),
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{ERROR_BODY}"},
                    "examples": {
                        code: {"summary": code, "value": _example(code, method, path, body)} for code in group
                    },
                }
            },
        }
        if status == "429":
            answer["headers"] = _RETRY_AFTER
        responses[status] = answer


def _examples(operation: dict[str, Any], method: str, path: str) -> None:
    seed = {"summary": "The seed API reference's example", "value": None}
    if (body := REQUESTS.get((method, path))) is not None:
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            content["examples"] = {"example": {"summary": "An example the API accepts", "value": body}}
    if (answer := RESPONSES.get((method, path))) is not None:
        for code in ("200", "201"):
            content = operation.get("responses", {}).get(code, {}).get("content", {}).get("application/json")
            if content is not None:
                content["examples"] = {"seed": seed | {"value": answer}}
