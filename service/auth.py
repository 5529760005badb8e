"""API-key authentication for ``/v1`` (bearer tokens) and the per-key rate limit.

Keys are configured as sha256 hex digests (``SWITCHBOARD_API_KEYS``), never in
clear. A presented token is hashed and compared with every configured digest
using ``hmac.compare_digest`` without stopping at the first match, so timing
reveals neither which key matched nor how much of a digest agreed.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import Unauthorized
from service.ratelimit import RateLimiter
from service.settings import ApiKey

ANONYMOUS = "anonymous"


class Authenticator:
    """Resolves an ``Authorization`` header to a key name, or raises ``Unauthorized``."""

    def __init__(self, keys: tuple[ApiKey, ...], disabled: bool) -> None:
        self._keys = [(key.name, bytes.fromhex(key.sha256)) for key in keys]
        self.disabled = disabled

    def authenticate(self, authorization: str | None) -> str:
        """Return the matching key's name (``anonymous`` when auth is disabled)."""
        if self.disabled:
            return ANONYMOUS
        if not authorization:
            raise Unauthorized("missing Authorization header; send `Authorization: Bearer <api key>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization must use the Bearer scheme: `Authorization: Bearer <api key>`")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        matched: str | None = None
        for name, expected in self._keys:
            if hmac.compare_digest(digest, expected) and matched is None:
                matched = name
        if matched is None:
            raise Unauthorized("invalid API key")
        return matched


class ApiKeyGuard:
    """Litestar guard: authenticate, then take a rate-limit token for the key.

    Runs before the body is read, so unauthenticated requests cost no parsing. The
    limiter is shared through Redis or per worker (``service.ratelimit.build_limiter``).
    The key name is left in ``scope["state"]["api_key"]`` for logs and metrics.
    """

    def __init__(self, authenticator: Authenticator, limiter: RateLimiter) -> None:
        self.authenticator = authenticator
        self.limiter = limiter

    def __deepcopy__(self, memo: dict[int, Any]) -> ApiKeyGuard:
        # Litestar deep-copies routers (and their guards) when registering them. The guard is
        # shared state: a copy would split the rate limit between routers and copy Redis clients.
        return self

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        name = self.authenticator.authenticate(connection.headers.get("authorization"))
        connection.scope.setdefault("state", {})["api_key"] = name
        bucket = name
        if name == ANONYMOUS and connection.client is not None:
            # Auth off (local development): limit per client address instead.
            bucket = f"{ANONYMOUS}:{connection.client.host}"
        await self.limiter.take(bucket)
