"""Request-scoped dependencies: the loaded engine, and the caller each route requires.

A route states what it needs in its signature (``caller: Searching``); a key whose role lacks
that permission gets 403, a request without a valid key 401 (see ``service.auth``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from kb.engine import Engine
from kb.errors import IndexNotFound, Unauthorized
from kb.keys import Permission
from service.auth import Caller, LoginRequired, authorize, current_caller


async def get_engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise IndexNotFound("no index is loaded yet: run 'kb index'; the service serves it as "
                            "soon as it is published")
    return engine


get_engine.kb_errors = (503,)  # type: ignore[attr-defined]  # declared in OpenAPI (service.errors)


EngineDep = Annotated[Engine, Depends(get_engine)]

# Any caller, with or without a key (a key sent must be valid): routes open to all, such as
# /healthz, still answer for the caller's audience.
current_caller.kb_errors = (401, 503)  # type: ignore[attr-defined]  # a bad key; a busy store
AnyCaller = Annotated[Caller, Depends(current_caller)]


def requirement(permission: Permission) -> Any:
    """The dependency that lets through only callers with ``permission`` (one per permission,
    so FastAPI runs it once per request)."""
    if permission not in _REQUIREMENTS:
        async def dependency(caller: AnyCaller) -> Caller:
            return authorize(caller, permission)

        dependency.__name__ = f"require_{permission.value}"
        dependency.kb_errors = (401, 403, 503)  # type: ignore[attr-defined]  # for OpenAPI
        _REQUIREMENTS[permission] = dependency
    return _REQUIREMENTS[permission]


_REQUIREMENTS: dict[Permission, Any] = {}


def _requiring(permission: Permission) -> Any:
    return Depends(requirement(permission))


Searching = Annotated[Caller, _requiring(Permission.SEARCH)]
Suggesting = Annotated[Caller, _requiring(Permission.SUGGEST)]
GivingFeedback = Annotated[Caller, _requiring(Permission.FEEDBACK)]
ReadingArticles = Annotated[Caller, _requiring(Permission.READ_ARTICLES)]
ReadingGaps = Annotated[Caller, _requiring(Permission.GAPS)]
ReadingStats = Annotated[Caller, _requiring(Permission.ARTICLE_STATS)]
ReadingIndexStatus = Annotated[Caller, _requiring(Permission.INDEX_STATUS)]
Reloading = Annotated[Caller, _requiring(Permission.RELOAD)]
ManagingKeys = Annotated[Caller, _requiring(Permission.MANAGE_KEYS)]


def _page(permission: Permission) -> Any:
    async def dependency(request: Request) -> Caller:
        """The caller of a web page: without a valid key the browser goes to the login form."""
        try:
            caller = await current_caller(request)
        except Unauthorized:  # a revoked key in the cookie: sign in again
            caller = Caller("anonymous", "public")
        if caller.role == "anonymous":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        return authorize(caller, permission)

    dependency.__name__ = f"page_{permission.value}"
    return Depends(dependency)


# Web pages: the search page, an article's page, the writers' dashboard.
SearchPage = Annotated[Caller, _page(Permission.SEARCH)]
ArticlePage = Annotated[Caller, _page(Permission.READ_ARTICLES)]
WritersPage = Annotated[Caller, _page(Permission.GAPS)]
