"""The API's one error tree, mapped once to the seed's body ``{"success": false, "error": {...}}``.

Every error a route raises is an ``ApiError``; its class fixes the HTTP status, its ``code`` is the
seed's code where the seed names one (docs/errors.md lists every code, its status and its routes)::

    ApiError                        (500, INTERNAL_SERVER_ERROR, DATABASE_ERROR)
    ├── BadRequest                  400  VALIDATION_ERROR (``invalid``), WEB_CALLS_NOT_SUPPORTED,
    │                                    WEBHOOK_URL_NOT_ALLOWED, WEBHOOK_URL_UNRESOLVABLE, ...
    ├── Unauthorized                401  UNAUTHORIZED, INVALID_API_KEY
    ├── Forbidden                   403  INSUFFICIENT_SCOPE
    ├── NotFound                    404  CAMPAIGN_NOT_FOUND, CALL_NOT_FOUND, AGENT_NOT_FOUND, ...
    ├── MethodNotAllowed            405  METHOD_NOT_ALLOWED
    ├── Conflict                    409  CONFLICT, INVALID_CAMPAIGN_TRANSITION, CALL_ENDED, ...
    ├── RateLimited                 429  RATE_LIMITED (carries Retry-After)
    ├── BadGateway                  502  UPSTREAM_SERVICE_ERROR (the gateway refused a call action)
    └── Unavailable                 503  UPSTREAM_SERVICE_TIMEOUT, NOT_READY, DATABASE_UNAVAILABLE

Every bad request value or shape is ONE code, VALIDATION_ERROR, whichever of the seed's spellings its
section uses (BAD_REQUEST_FORMAT, validation_error, bad_request, BAD_REQUEST): a client handles one
code, and ``error.details`` lists every field at fault (``field``, ``reason``), the message names them
all. FastAPI's request validation errors and malformed JSON become that too; Starlette's 404/405
become ``NotFound``/``MethodNotAllowed``; anything else is a 500 whose body says nothing about the
cause (the traceback goes to the log only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialer.ports import StorageUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error the API answers with; ``details`` lists per-field or per-row problems."""

    status = 500

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details) if details else None
        self.headers = headers


class BadRequest(ApiError):
    """The request is malformed or its values are invalid."""

    status = 400


class Unauthorized(ApiError):
    """No key, or a key that is unknown or revoked."""

    status = 401


class Forbidden(ApiError):
    """The key is valid but may not do this (a publishable key)."""

    status = 403


class NotFound(ApiError):
    """No such resource for this tenant (another tenant's looks exactly the same)."""

    status = 404


class MethodNotAllowed(ApiError):
    """The route exists but not with this method."""

    status = 405


class Conflict(ApiError):
    """The resource exists already, or is in a state that forbids the action."""

    status = 409


class RateLimited(ApiError):
    """The key spent its allowance on this route."""

    status = 429


class BadGateway(ApiError):
    """The SIP gateway answered but refused (the runtime raised CallRejected)."""

    status = 502


class Unavailable(ApiError):
    """A part this request needs (SIP gateway, database) is not running or not answering."""

    status = 503


#: The one code of a request whose values or shape are wrong (a body field, a path id, a query).
VALIDATION_ERROR = "VALIDATION_ERROR"


def invalid(details: Sequence[dict[str, Any]], summary: str | None = None) -> BadRequest:
    """VALIDATION_ERROR naming every field at fault: ``details`` holds ``field`` and ``reason`` each."""
    return BadRequest(VALIDATION_ERROR, summary or describe(details), details=details)


def invalid_field(field: str, reason: str) -> BadRequest:
    """VALIDATION_ERROR for one field (a path id, a query value, one body field)."""
    return invalid([{"field": field, "reason": reason}])


def describe(details: Sequence[dict[str, Any]]) -> str:
    """One message naming every problem: ``timezone: unknown time zone; candidates.0.phone: ...``."""
    parts = [f"{d['field']}: {d['reason']}" if d.get("field") else str(d["reason"]) for d in details]
    if len(parts) == 1:
        return parts[0]
    return f"{len(parts)} invalid fields: " + "; ".join(parts)


def error_body(code: str, message: str, details: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The seed's error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = list(details)
    return {"success": False, "error": error}


def _respond(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
    )


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return _respond(invalid_field("", not_json(await request.body())))
    return _respond(invalid(field_errors(errors) or [{"field": "", "reason": "invalid request"}]))


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as ``details``: field paths and messages only (its "input" would echo phone
    numbers back), a validator's own message without pydantic's "Value error, " prefix."""
    details = []
    for err in errors:
        reason = err["msg"]
        if err.get("type") == "value_error" and "error" in err.get("ctx", {}):
            reason = str(err["ctx"]["error"])
        details.append({"field": _field(err.get("loc", ())), "reason": reason})
    return details


def _field(loc: Sequence[Any]) -> str:
    """``body.candidates.0.phone`` -> ``candidates.0.phone``; a query or path value keeps its name."""
    parts = [str(part) for part in loc]
    return ".".join(parts[1:] if parts and parts[0] in ("body", "query", "path") else parts)


def not_json(raw: bytes) -> str:
    """Where the JSON of a body breaks, as Python's parser says it, for a message a human can act on."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (UnicodeDecodeError, ValueError):
        pass
    return "request body is not valid JSON"


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _respond(MethodNotAllowed("METHOD_NOT_ALLOWED", "method not allowed on this route"))
    if exc.status_code == 404:
        return _respond(NotFound("NOT_FOUND", "no such route"))
    if exc.status_code == 400:  # Starlette could not read the body (e.g. a broken multipart form)
        return _respond(invalid_field("", str(exc.detail)))
    error = ApiError("HTTP_ERROR", str(exc.detail))
    error.status = exc.status_code
    return _respond(error)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The route template, not the URL: paths (/phone-numbers/{number}) and queries may carry phone numbers.
    template = getattr(request.scope.get("route"), "path", "unmatched route")
    if isinstance(exc, StorageUnavailable):  # an outage, not a bug: the client may retry
        log.warning("database unavailable on %s %s: %s", request.method, template, exc)
        return _respond(Unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly"))
    log.error("unhandled error on %s %s", request.method, template, exc_info=exc)
    if isinstance(exc, SQLAlchemyError):
        return _respond(ApiError("DATABASE_ERROR", "unexpected database error"))
    return _respond(ApiError("INTERNAL_SERVER_ERROR", "unexpected server error"))


def install(app: FastAPI) -> None:
    """Map every error to the seed's body on ``app``."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
