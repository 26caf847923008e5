"""Who may call a route: API keys with scopes, and per-key token buckets.

`authorize` is shared by FastAPI's dependency (`require`) and the raw lookup path, so both answer
the same 401/403/429 bodies: 401 without a key or with a bad or revoked one, 403 when the key lacks
the route's scope, 429 with `Retry-After` when the key's bucket is empty. The id of a key that
was let in is put in the request's scope (`KEY_ID`) for the access log (never its secret).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from server.errors import ApiError
from server.keys import ApiKey

if TYPE_CHECKING:
    from server.state import AppState

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eql"'}
KEY_ID = "eql.key_id"  # the ASGI scope's entry for the accepted key's id


def bearer_token(authorization: str | None, api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def authorize(state: AppState, token: str | None, scopes: Iterable[str], limit: str) -> ApiKey:
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required (Authorization: Bearer <key> or X-API-Key: <key>)",
            headers=_CHALLENGE,
        )
    key = state.keys.verify(token)
    if key is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)
    wanted = tuple(scopes)
    if not any(key.allows(s) for s in wanted):
        raise ApiError(
            403, "forbidden", f"this key lacks the scope this route needs ({' or '.join(wanted)})"
        )
    wait = state.limits[limit].take(key.id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests for this key; retry after the given seconds",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return key


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


def require(*scopes: str, limit: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency admitting keys with any of `scopes`, charged to the `limit` bucket."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
        header: str | None = Security(_header),
    ) -> ApiKey:
        token = bearer_token(None if bearer is None else f"Bearer {bearer.credentials}", header)
        state: AppState = request.app.state.eql
        key = authorize(state, token, scopes, limit)
        request.scope[KEY_ID] = key.id
        return key

    return dependency
