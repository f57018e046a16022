"""Key management for admins: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from kb.errors import Forbidden
from kb.keys import ApiKey, create_key, revoke
from service.bodies import JSONBodyRoute
from service.deps import ManagingKeys

router = APIRouter(prefix="/admin/keys", tags=["admin"], route_class=JSONBodyRoute)


class KeyInfo(BaseModel):
    id: str
    name: str
    role: Literal["agent", "ticket-system", "writer", "admin"]
    audience: Literal["public", "internal"]
    created: str
    revoked: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(**key.to_dict())


class KeyList(BaseModel):
    keys: list[KeyInfo]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=64)
    role: Literal["agent", "ticket-system", "writer", "admin"]
    audience: Literal["public", "internal"] = "internal"


class CreatedKey(BaseModel):
    key: KeyInfo
    secret: str = Field(..., description="The API key itself: shown this once, never again.")


class Revoked(BaseModel):
    revoked: str


@router.get("", response_model=KeyList)
def list_keys(request: Request, caller: ManagingKeys) -> KeyList:
    return KeyList(keys=[KeyInfo.of(k) for k in request.app.state.auth.store.keys()])


@router.post("", response_model=CreatedKey, status_code=201, responses={409: {}})
def new_key(body: NewKey, request: Request, caller: ManagingKeys) -> CreatedKey:
    if caller.audience == "public" and body.audience != "public":
        # A public key may never see internal articles, nor make a key that does.
        raise Forbidden("a public key can create public keys only")
    auth = request.app.state.auth
    key, secret = create_key(auth.store, body.name, body.role, body.audience)
    auth.forget()
    return CreatedKey(key=KeyInfo.of(key), secret=secret)


@router.delete("/{name_or_id}", response_model=Revoked, responses={404: {}})
def revoke_key(name_or_id: str, request: Request, caller: ManagingKeys) -> Revoked:
    auth = request.app.state.auth
    revoke(auth.store, name_or_id)
    auth.forget()
    return Revoked(revoked=name_or_id)
