"""Who may call a route: API keys with scopes, and per-key token buckets.

`authorize` is shared by FastAPI's dependency (`require`) and the raw lookup path, so both answer
the same 401/403/429 bodies: 401 without a key or with a bad or revoked one, 403 when the key lacks
the route's scope, 429 with `Retry-After` when the key's bucket is empty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from server.errors import ApiError
from server.keys import ApiKey

if TYPE_CHECKING:
    from server.state import AppState

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eql"'}


class RateLimiter:
    """A token bucket per key: `rate` tokens a second, at most `burst`; rate 0 is no limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}

    def take(self, key_id: str) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


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
        return authorize(state, token, scopes, limit)

    return dependency
