"""Checks at the edge: who is calling, may they, and are they within their limits.

Every refusal is a JSON 4xx naming the field and the reason, and is counted in
``pw:stats:refused`` by reason, never a crash.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from server import auth

from base import keys
from server.responses import error

REFUSED = keys.REFUSED


@dataclass
class TokenBucket:
    """Rate limit with bursts: ``rate`` units per second, at most ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self, units: float, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds to wait before ``units`` would be allowed."""
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if units <= self.tokens:
            self.tokens -= units
            return 0.0
        return (units - self.tokens) / self.rate if self.rate > 0 else float("inf")


class AddressBuckets:
    """A token bucket per client address, for at most ``capacity`` addresses.

    The least recently seen address is forgotten first when a new one comes, so a flood of
    addresses costs bounded memory; a forgotten address starts again with a full burst, which
    is all that forgetting can give it.
    """

    def __init__(self, rate: float, burst: float, capacity: int):
        self.rate = rate
        self.burst = burst
        self.capacity = max(1, capacity)
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, now: float | None = None) -> float:
        """0 when ``address`` may make one more request; otherwise the seconds to wait."""
        bucket = self.buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
            if len(self.buckets) >= self.capacity:
                self.buckets.popitem(last=False)
        self.buckets[address] = bucket
        return bucket.take(1, now)


class Gate:
    """Per-process access state: rate buckets per credential and per anonymous reader's
    address, connections per address.

    ``read_rate`` None: anonymous reads are not rate-limited (tests that exercise other limits).
    """

    def __init__(self, public_read: bool, device_rate: float, device_burst: float,
                 ws_per_address: int, allowed_origins: tuple[str, ...],
                 read_rate: float | None = None, read_burst: float = 0.0, read_addresses: int = 1):
        self.public_read = public_read
        self.device_rate = device_rate
        self.device_burst = device_burst
        self.ws_per_address = ws_per_address
        self.allowed_origins = allowed_origins
        self.buckets: dict[str, TokenBucket] = {}
        self.connections: dict[str, int] = {}
        self.readers = AddressBuckets(read_rate, read_burst, read_addresses) if read_rate is not None else None

    def bucket(self, credential: auth.Credential) -> TokenBucket:
        key = f"{credential.kind}:{credential.name}"
        if key not in self.buckets:
            self.buckets[key] = TokenBucket(self.device_rate, self.device_burst)
        return self.buckets[key]

    def origin_allowed(self, connection: HTTPConnection) -> bool:
        """Browsers send Origin: same host, or listed in PASARWATCH_ALLOWED_ORIGINS ('*' = any)."""
        origin = connection.headers.get("origin")
        if not origin or "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        return urlsplit(origin).netloc == connection.headers.get("host", "")


def presented_token(connection: HTTPConnection) -> str | None:
    # Browsers cannot set headers on a WebSocket: they may pass ?token= instead.
    return auth.bearer(connection.headers.get("authorization")) or connection.query_params.get("token")


async def count_refusal(redis, reason: str) -> None:
    """Count a refusal by reason (``GET /metrics``)."""
    try:
        await redis.hincrby(REFUSED, reason, 1)
    except Exception:  # noqa: BLE001 - counting a refusal must not turn it into a 500
        pass


async def refuse(connection: HTTPConnection, status: int, field_name: str, reason: str, detail: str,
                 headers: dict | None = None) -> Response:
    await count_refusal(connection.app.state.redis, reason)
    response = error(status, field_name, reason, detail)
    if headers:
        response.headers.update(headers)
    return response


async def authorize(connection: HTTPConnection, action: str) -> auth.Credential | Response | None:
    """The caller's credential if it may do ``action``; a refusal response otherwise.

    Returns None for a public read by an anonymous caller within its address's read rate.
    """
    gate: Gate = connection.app.state.gate
    token = presented_token(connection)
    if token is None:
        if action == "read" and gate.public_read:
            return await _anonymous_read(connection, gate)
        return await refuse(connection, 401, "authorization", "missing_token",
                            "send Authorization: Bearer <token>")
    credential = await auth.lookup(connection.app.state.redis, token)
    if credential is None:
        return await refuse(connection, 401, "authorization", "invalid_token", "unknown or revoked token")
    if not credential.may(action):
        return await refuse(connection, 403, "authorization", "forbidden",
                            f"a {credential.role} token may not {action}")
    return credential


async def _anonymous_read(connection: HTTPConnection, gate: Gate) -> Response | None:
    """None when an anonymous reader's address is within its read rate, else a 429.

    Checked before the request touches Redis: a crowd of anonymous readers is refused here
    instead of taking every Redis connection from the devices. WebSocket handshakes are not
    counted: open sockets are limited per address already (PASARWATCH_WS_MAX_PER_ADDRESS).
    """
    if gate.readers is None or connection.scope["type"] != "http":
        return None
    address = connection.client.host if connection.client else "?"
    wait = gate.readers.take(address)
    if not wait:
        return None
    return await refuse(connection, 429, "address", "read_rate_limited",
                        f"{address} is over the public read rate ({gate.readers.rate:g}/s); "
                        f"retry in {wait:.1f}s, or send a token",
                        {"retry-after": str(max(1, math.ceil(wait)))})


def requires(action: str):
    """Decorate an HTTP endpoint: refuse callers who may not ``action``; the credential (or None
    for an anonymous public read) is in ``request.state.credential``."""

    def wrap(endpoint):
        async def guarded(request):
            credential = await authorize(request, action)
            if isinstance(credential, Response):
                return credential
            request.state.credential = credential
            return await endpoint(request)

        guarded.__name__ = endpoint.__name__
        guarded.__doc__ = endpoint.__doc__
        return guarded

    return wrap
