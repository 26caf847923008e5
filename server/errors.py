"""One error envelope for every failure: `{"errors": [{"code", "message", ...}]}`.

EQL diagnostics keep their own codes (E1xx, E2xx) and fields (`EqlError.to_json()`); the server's
own errors use lower-case codes (`unauthorized`, `rate_limited`, `deadline_exceeded`, ...). No error
body carries a stack trace, a file path or a key; unexpected exceptions are logged with an id and
answered with that id only.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from eql.diagnostics import EqlError

log = logging.getLogger("eql.server")


class ErrorItem(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response; EQL diagnostics add span fields (line, column, ...), notes, helps."""

    errors: list[dict[str, Any]]


class ApiError(Exception):
    """An error the server answers with `status` and one error item."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def items(self) -> list[dict[str, Any]]:
        return [{"code": self.code, "message": self.message, **self.extra}]


def error_bytes(items: Sequence[Mapping[str, Any]]) -> bytes:
    doc = {"errors": list(items)}
    try:
        return orjson.dumps(doc)
    except TypeError:  # text that is not Unicode (a lone surrogate) echoed in a message
        return orjson.dumps(_printable(doc))


def _printable(value: Any) -> Any:
    """`value` with every string made encodable (lone surrogates escaped as `\\udxxx`)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {str(_printable(k)): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def error_response(
    status: int, items: Sequence[Mapping[str, Any]], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(error_bytes(items), status, headers, media_type="application/json")


def api_error_response(exc: ApiError) -> Response:
    return error_response(exc.status, exc.items(), exc.headers)


def eql_error_response(exc: EqlError) -> Response:
    return error_response(400, exc.to_json())


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def _validation_items(exc: RequestValidationError) -> list[dict[str, Any]]:
    items = []
    for e in exc.errors()[:20]:
        loc = [str(p) for p in e.get("loc", ())]
        # the message only: pydantic's `input` and `ctx` would echo what the client sent
        items.append(
            {
                "code": "invalid_request",
                "message": f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}",
                "location": loc,
            }
        )
    return items or [{"code": "invalid_request", "message": "invalid request"}]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error envelope."""

    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return api_error_response(exc)

    async def on_eql_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, EqlError)
        return eql_error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _validation_items(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every route of the path, not only the first one matched
            headers["Allow"] = ", ".join(_allowed(request))
        return error_response(exc.status_code, [{"code": code, "message": detail}], headers)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        return internal_error(exc)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(EqlError, on_eql_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _allowed(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods)


def internal_error(exc: BaseException) -> Response:
    ref = secrets.token_hex(6)
    log.error("internal error %s", ref, exc_info=exc)
    return error_response(
        500,
        [{"code": "internal", "message": f"internal error (reference {ref}); this is a bug"}],
    )


# The error responses each route documents in OpenAPI.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "EQL diagnostics, or a bad request",
        401: "no key, or a bad or revoked key",
        403: "the key lacks the scope this route needs",
        404: "no such entity, key or route",
        406: "no acceptable response type",
        408: "the query deadline passed (the work was stopped)",
        413: "body too large",
        422: "invalid request (fields, sizes), or a query over the memory limit",
        429: "rate limited or too many concurrent queries; see Retry-After",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}
