"""RFC 7807 problem details: every error of the API is ``application/problem+json``.

A body has ``type`` (``about:blank``), ``title`` (the status phrase), ``status``, ``detail``
(what was wrong and what is allowed) and, for validation errors, ``errors``: one
``{field, message}`` per bad field. Nothing internal (no stack trace, no SQL, no path) is
ever in a body: an unexpected failure is a bare 500 whose detail says only that, and the
traceback goes to the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answered as problem details; ``extra`` adds members (e.g. ``holder``)."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The RFC 7807 members of a problem of ``status`` with ``detail``."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The problem+json response of ``status`` with ``detail``."""
    return JSONResponse(
        problem_body(status, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_errors(error: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for item in error.errors():
        message = str(item.get("msg", "invalid"))
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        out.append({"field": _field(item.get("loc", ())), "message": message})
    return out


async def _on_validation(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = _validation_errors(error)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(422, detail or "invalid request", errors=errors)


async def _on_http(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem_response(error.status_code, str(error.detail), headers=error.headers)


async def _on_problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return problem_response(error.status, error.detail, headers=error.headers, **error.extra)


async def _on_database_busy(_: Request, error: Exception) -> JSONResponse:
    log.warning("database busy: %s", error)
    return problem_response(
        503, "the database is busy; retry shortly", headers={"Retry-After": "1"}
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(OperationalError, _on_database_busy)
    app.add_exception_handler(Exception, _on_unexpected)


class ProblemDetails(BaseModel):
    """An RFC 7807 problem (extra members such as ``errors`` or ``holder`` may follow)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of error responses with problem+json bodies."""
    return {
        status: {
            "model": ProblemDetails,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        for status in statuses
    }


COMMON_ERRORS = (401, 403, 413, 422)
"""Errors any authenticated route can answer."""
