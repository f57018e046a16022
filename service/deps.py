"""Request-scoped access to the loaded engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kb.engine import Engine
from kb.errors import IndexNotFound


async def get_engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise IndexNotFound("no index is loaded yet: run 'kb index'; the service serves it as "
                            "soon as it is published")
    return engine


get_engine.kb_errors = (503,)  # type: ignore[attr-defined]  # declared in OpenAPI (service.errors)


EngineDep = Annotated[Engine, Depends(get_engine)]
