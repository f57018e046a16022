"""API keys as the store keeps them: who a key belongs to, what it may do and see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    audience: str
    created: str
    revoked: str | None
