"""The API's one error tree, mapped once to the seed's body ``{"success": false, "error": {...}}``.

Every error a route raises is an ``ApiError``; its class fixes the HTTP status, its ``code`` is the
seed's code for that resource (codes differ per seed section, so they are given where raised)::

    ApiError                        (500, INTERNAL_SERVER_ERROR)
    ├── BadRequest                  400  BAD_REQUEST_FORMAT, VALIDATION_ERROR, validation_error,
    │                                    bad_request, BAD_REQUEST, WEB_CALLS_NOT_SUPPORTED
    ├── Unauthorized                401  UNAUTHORIZED, INVALID_API_KEY
    ├── Forbidden                   403  INSUFFICIENT_SCOPE
    ├── NotFound                    404  CAMPAIGN_NOT_FOUND, CALL_NOT_FOUND, AGENT_NOT_FOUND, ...
    ├── MethodNotAllowed            405  METHOD_NOT_ALLOWED
    ├── Conflict                    409  CONFLICT, INVALID_CAMPAIGN_TRANSITION, CALL_ENDED, ...
    ├── RateLimited                 429  RATE_LIMITED (carries Retry-After)
    ├── BadGateway                  502  UPSTREAM_SERVICE_ERROR (the gateway refused a call action)
    └── Unavailable                 503  UPSTREAM_SERVICE_TIMEOUT, UPSTREAM_SERVICE_ERROR, NOT_READY

FastAPI's own request validation errors become ``BadRequest`` with the code the route declares
(``validation_code``); Starlette's 404/405 become ``NotFound``/``MethodNotAllowed``; anything else is a
500 whose body says nothing about the cause (the traceback goes to the log only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


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


def validation_code(code: str) -> Callable[[F], F]:
    """Declare the code a route's request validation errors answer with (the seed differs per route)."""

    def mark(endpoint: F) -> F:
        endpoint.validation_code = code  # type: ignore[attr-defined]
        return endpoint

    return mark


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


def validation_code_of(request: Request) -> str:
    """The code a route declared for its validation errors (``validation_code``), else VALIDATION_ERROR."""
    route = request.scope.get("route")
    code: str = getattr(getattr(route, "endpoint", None), "validation_code", "VALIDATION_ERROR")
    return code


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code = validation_code_of(request)
    # Field paths and messages only: pydantic's "input" would echo phone numbers back into logs.
    details = [
        {"field": ".".join(str(part) for part in err.get("loc", ()) if part != "body"), "reason": err["msg"]}
        for err in exc.errors()
    ]
    first = details[0] if details else {"field": "", "reason": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return _respond(BadRequest(code, f"{where}{first['reason']}", details=details))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _respond(MethodNotAllowed("METHOD_NOT_ALLOWED", "method not allowed on this route"))
    if exc.status_code == 404:
        return _respond(NotFound("NOT_FOUND", "no such route"))
    if exc.status_code == 400:  # Starlette could not read the body (e.g. a broken multipart form)
        return _respond(BadRequest(validation_code_of(request), str(exc.detail)))
    error = ApiError("HTTP_ERROR", str(exc.detail))
    error.status = exc.status_code
    return _respond(error)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The route template, not the URL: paths (/phone-numbers/{number}) and queries may carry phone numbers.
    template = getattr(request.scope.get("route"), "path", "unmatched route")
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
