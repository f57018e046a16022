"""Who is calling: the API key of a request, and what its role lets it do.

A key comes as ``Authorization: Bearer <key>`` or, from the web pages, in the session cookie
the login form sets. Routes state what they need with the dependencies in ``service.deps``;
handlers never check keys themselves.

Without any key, a service listening on a loopback address serves every caller as an admin
for local trials; on any other address ``kb serve`` refuses to start unless ``KB_AUTH=off``.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from kb.audience import INTERNAL, PUBLIC
from kb.config import Settings
from kb.errors import Forbidden, KBError, Unauthorized
from kb.keys import ROLES, ApiKey, KeyStore, Permission, active_keys, hash_secret, looks_like_key

log = logging.getLogger("kb.service")

COOKIE = "kb_session"
CACHE_SECONDS = 1.0  # a key revoked with 'kb keys revoke' is refused this much later at most
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Caller:
    """The caller of one request: a key's, or a keyless caller's rights."""

    role: str  # a key's role; "open": a keyless caller on an open service; "anonymous"
    audience: str
    key: ApiKey | None = None
    via: str | None = None  # "bearer" or "cookie" for a caller with a key

    def may(self, permission: Permission) -> bool:
        if self.role == "open":
            return True
        return permission in ROLES.get(self.role, frozenset())

    @property
    def name(self) -> str:
        return self.key.name if self.key else self.role


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Auth:
    """The service's authentication state: its mode, the key store and a short-lived cache of
    keys looked up (a request with a known key costs a dictionary look-up)."""

    def __init__(self, settings: Settings, store: KeyStore) -> None:
        self.mode = settings.auth
        self.store = store
        self.loopback = is_loopback(settings.host)
        self.open_audience = PUBLIC if settings.public_only else INTERNAL
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop what is cached: a key made or revoked through the API counts at once."""
        with self._lock:
            self._keys.clear()
            self._any = (0.0, False)

    def has_keys(self) -> bool:
        expires, found = self._any
        if time.monotonic() >= expires:
            found = bool(active_keys(self.store))
            self._any = (time.monotonic() + CACHE_SECONDS, found)
        return found

    def open(self) -> bool:
        """Are callers without a key served (as admins of the keyless audience)?"""
        if self.mode == "off":
            return True
        if self.mode == "on" or not self.loopback:
            return False
        return not self.has_keys()

    def open_cached(self) -> bool | None:
        """open() if it can be told without the store, else None."""
        if self.mode != "auto" or not self.loopback or self._any[0] > time.monotonic():
            return self.open()
        return None

    def lookup(self, secret: str) -> ApiKey | None:
        """The active key of ``secret``, or None."""
        if not looks_like_key(secret):
            return None
        digest = hash_secret(secret)
        key = self.store.key_by_hash(digest)
        if key is not None and key.revoked is not None:
            key = None
        with self._lock:
            if len(self._keys) >= CACHE_SIZE:
                self._keys.clear()
            self._keys[digest] = (time.monotonic() + CACHE_SECONDS, key)
        return key

    def lookup_cached(self, secret: str) -> tuple[bool, ApiKey | None]:
        """(known, key): the key of ``secret`` if it can be told without the store."""
        if not looks_like_key(secret):
            return True, None
        entry = self._keys.get(hash_secret(secret))
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def describe(self) -> str:
        if self.mode == "off":
            return ("KB_AUTH=off: callers without an API key are served as admins on any "
                    "address")
        if self.open():
            return ("no API keys configured: open to every caller on this loopback address for "
                    "local trials; create one with 'kb keys create' to require keys")
        return "API keys required (Authorization: Bearer <key>, or the login page)"


def check_startup(settings: Settings, store: KeyStore) -> None:
    """Refuse to serve a non-loopback address to callers without keys, unless asked to."""
    if settings.auth == "off" or is_loopback(settings.host) or active_keys(store):
        return
    raise KBError(f"refusing to serve {settings.host} without API keys: create one with "
                  "'kb keys create --name NAME --role admin', listen on 127.0.0.1, or set "
                  "KB_AUTH=off to serve every caller without a key")


def credentials(request: Request) -> tuple[str | None, str | None]:
    """The key a request carries, and how: the Authorization header first, then the cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        return value.strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    return (cookie, "cookie") if cookie else (None, None)


async def current_caller(request: Request) -> Caller:
    """The request's caller; a key sent must be valid, even where keys are not needed. Also
    kept in ``request.state`` (``caller``, ``audience``) for what runs after the route."""
    caller = await _caller(request)
    request.state.caller, request.state.audience = caller, caller.audience
    return caller


async def _caller(request: Request) -> Caller:
    auth: Auth = request.app.state.auth
    secret, via = credentials(request)
    # The store is asked off the event loop, and only when the cache cannot tell.
    if secret is not None:
        known, key = auth.lookup_cached(secret)
        if not known:
            key = await run_in_threadpool(auth.lookup, secret)
        if key is None:
            raise Unauthorized("the API key is unknown or revoked")
        return Caller(key.role, key.audience, key, via)
    is_open = auth.open_cached()
    if is_open is None:
        is_open = await run_in_threadpool(auth.open)
    if is_open:
        return Caller("open", auth.open_audience)
    return Caller("anonymous", PUBLIC)


def authorize(caller: Caller, permission: Permission) -> Caller:
    if caller.role == "anonymous":
        raise Unauthorized("this route needs an API key: send 'Authorization: Bearer <key>' "
                           "or sign in at /login")
    if not caller.may(permission):
        raise Forbidden(f"a key with the {caller.role} role may not use this route "
                        f"(it needs the {permission.value} permission)")
    return caller


class LoginRequired(Exception):
    """A page asked for without a key: the browser is sent to the login form."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def to_login(_: Request, exc: LoginRequired) -> RedirectResponse:
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)
