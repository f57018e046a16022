"""API keys: who may call which route (role) and what they may ever see (audience).

A key is a random token shown once, when it is made; the store keeps only its SHA-256. A
plain hash is enough because the token carries 256 bits from ``secrets``: nobody can guess
it, so nothing is gained from a slow password hash (bcrypt, argon2), which would cost
milliseconds on every request. A stolen database then yields no usable key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from kb.errors import KBError, KeyExists

PREFIX = "kb_"  # makes a leaked key easy to recognise (secret scanners, logs)
AUDIENCES = ("public", "internal")


class Permission(StrEnum):
    SEARCH = "search"
    SUGGEST = "suggest"
    FEEDBACK = "feedback"
    READ_ARTICLES = "read_articles"
    GAPS = "gaps"
    ARTICLE_STATS = "article_stats"
    INDEX_STATUS = "index_status"
    RELOAD = "reload"
    MANAGE_KEYS = "manage_keys"


_AGENT = frozenset({Permission.SEARCH, Permission.SUGGEST, Permission.FEEDBACK,
                    Permission.READ_ARTICLES})
ROLES: dict[str, frozenset[Permission]] = {
    "agent": _AGENT,
    "ticket-system": frozenset({Permission.SUGGEST, Permission.FEEDBACK}),
    "writer": _AGENT | {Permission.GAPS, Permission.ARTICLE_STATS, Permission.INDEX_STATUS},
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    audience: str
    created: str
    revoked: str | None = None

    def may(self, permission: Permission) -> bool:
        return self.revoked is None and permission in ROLES.get(self.role, frozenset())

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role, "audience": self.audience,
                "created": self.created, "revoked": self.revoked}


class KeyStore(Protocol):
    """What the storage layer offers for keys."""

    def add_key(self, key: ApiKey, secret_hash: str) -> None: ...
    def keys(self) -> list[ApiKey]: ...
    def revoke_key(self, name_or_id: str) -> bool: ...
    def key_by_hash(self, secret_hash: str) -> ApiKey | None: ...


class InvalidKeyRequest(KBError):
    code = "invalid_key_request"
    status = 422


class UnknownKey(KBError):
    code = "unknown_key"
    status = 404


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_TOKEN = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{43}}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_key(secret: str) -> bool:
    """A well-formed token: anything else is refused before the store is asked."""
    return _TOKEN.fullmatch(secret) is not None


def create_key(store: KeyStore, name: str, role: str, audience: str = "internal") -> tuple[
        ApiKey, str]:
    """A new key and its secret (shown once; only the hash is stored)."""
    if not _NAME.fullmatch(name):
        raise InvalidKeyRequest(f"key name {name!r}: 1-64 letters, digits or . _ @ -, starting with "
                        "a letter or digit")
    if role not in ROLES:
        raise InvalidKeyRequest(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if audience not in AUDIENCES:
        raise InvalidKeyRequest(f"unknown audience {audience!r}; audiences: {', '.join(AUDIENCES)}")
    if any(k.name == name and k.revoked is None for k in store.keys()):
        raise KeyExists(f"a key named {name!r} exists already; revoke it first or pick "
                        "another name")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=secrets.token_hex(6), name=name, role=role, audience=audience,
                 created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    store.add_key(key, hash_secret(secret))
    return key, secret


def revoke(store: KeyStore, name_or_id: str) -> None:
    if not store.revoke_key(name_or_id):
        raise UnknownKey(f"no active key named or with id {name_or_id!r}")


def active_keys(store: KeyStore) -> list[ApiKey]:
    return [k for k in store.keys() if k.revoked is None]
