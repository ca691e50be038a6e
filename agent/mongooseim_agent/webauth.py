"""Basic auth, response headers and the rate limit of the web config, as aiohttp middleware.

bcrypt is slow by design (tens of ms a check), so checks run on one thread of their own,
never on the event loop nor on the pool collectors use, and at most `max_pending` wait at
once. Results are cached by a digest of (user, hash, password), as the toolkit does, so a
scraper's repeated requests cost one check. An unknown user is checked against a real hash
of the highest configured cost, so it takes as long as a known user with a wrong password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from aiohttp import web

from mongooseim_agent.webconfig import WebConfig, WebConfigSource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CONFIG_KEY = web.RequestKey("webconfig", WebConfig)
BCRYPT_MAX_PASSWORD_BYTES = 72


def parse_basic_auth(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, as Go's BasicAuth reads it."""
    if header is None or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class TokenBucket:
    """golang.org/x/time/rate's limiter: `burst` tokens, one more every `interval`."""

    def __init__(self, burst: int, interval: float, clock: Callable[[], float]) -> None:
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) / self.interval)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class WebAuth:
    def __init__(
        self,
        source: WebConfigSource,
        exempt: Callable[[str], bool] = lambda path: False,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 16,
        cache_size: int = 1024,
    ) -> None:
        self._source = source
        self._exempt = exempt
        self._clock = clock
        self._max_pending = max_pending
        self._pending = 0
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_size = cache_size
        self._limiter: TokenBucket | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.failures = 0
        self.rate_limited = 0

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.on_response_prepare.append(self._add_headers)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        config = request.get(_CONFIG_KEY) or self._source.current()
        for name, value in config.headers.items():
            response.headers[name] = value

    def _limit(self, config: WebConfig) -> bool:
        """True when the request may go on."""
        limit = config.file.rate_limit
        if limit.interval_seconds == 0:
            self._limiter = None
            return True
        if self._limiter is None or (self._limiter.burst, self._limiter.interval) != (
            limit.burst, limit.interval_seconds
        ):
            self._limiter = TokenBucket(limit.burst, limit.interval_seconds, self._clock)
        return self._limiter.allow()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self._source.current()
        request[_CONFIG_KEY] = config
        if self._exempt(request.path):
            return await handler(request)
        if not self._limit(config):
            self.rate_limited += 1
            raise web.HTTPTooManyRequests(text="Too Many Requests\n")
        if config.users:
            credentials = parse_basic_auth(request.headers.get("Authorization"))
            verdict = await self._check(config, credentials)
            if verdict is None:
                raise web.HTTPServiceUnavailable(
                    text="too many authentication checks in progress\n",
                    headers={"Retry-After": "1"},
                )
            if not verdict:
                self.failures += 1
                raise web.HTTPUnauthorized(
                    text="Unauthorized\n", headers={"WWW-Authenticate": "Basic"}
                )
        return await handler(request)

    async def _check(self, config: WebConfig, credentials: tuple[str, bytes] | None) -> bool | None:
        """True/False for the credentials; None when too many checks are waiting."""
        if credentials is None:
            return False
        user, password = credentials
        hashed = config.users.get(user)
        known = hashed is not None
        decoy = config.decoy_hash or b""
        hash_bytes = hashed.encode() if hashed is not None else decoy
        key = hashlib.sha256(
            b"\0".join((user.encode(), hash_bytes, password))
        ).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached and known
        if self._pending >= self._max_pending:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bcrypt")
        self._pending += 1
        try:
            matched = await asyncio.get_running_loop().run_in_executor(
                self._executor, _checkpw, password, hash_bytes
            )
        finally:
            self._pending -= 1
        verdict = matched and known
        self._cache[key] = verdict
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return verdict


def _checkpw(password: bytes, hashed: bytes) -> bool:
    if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
        # bcrypt reads 72 bytes at most; check anyway so a long password costs the same.
        bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD_BYTES], hashed)
        return False
    return bcrypt.checkpw(password, hashed)
