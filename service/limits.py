"""Request limits: body size (413), request-target length (414), list and string lengths (422).

The caps are settings (``KB_MAX_BODY_BYTES``, ``KB_MAX_URL_CHARS``, ``KB_MAX_LIST_ITEMS``,
``KB_MAX_FIELD_CHARS``), so the body cap is enforced while the body arrives, before anything
parses it: a 10 MB body of a million tags is refused after its first 256 KiB, not parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kb.config import Settings
from service.errors import error

# Free text the engine itself bounds (KB_MAX_QUERY_CHARS, KB_MAX_TICKET_CHARS).
FREE_TEXT = {"query", "subject", "description"}


class RequestLimits:
    """ASGI middleware: refuses over-long request targets and over-large bodies with the one
    JSON error shape, reading at most the cap of any body."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_url = settings.max_url_chars

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope.get("query_string") or b"")
        if target > self.max_url:
            await error(414, "uri_too_long", f"the request target is {target} bytes long; the "
                        f"limit is {self.max_url}")(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size > self.max_body:
                await self._too_large(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error(413, "request_too_large",
                         f"the request body is larger than {self.max_body} bytes")
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def check(body: BaseModel, settings: Settings) -> None:
    """Refuse a parsed request body whose lists or identifiers exceed the settings' caps, with
    the same 422 as any other invalid field."""
    problems = []
    for loc, value in _walk(body, ("body",)):
        if isinstance(value, list) and len(value) > settings.max_list_items:
            problems.append((loc, f"at most {settings.max_list_items} values, not {len(value)}"))
        elif (isinstance(value, str) and loc[-1] not in FREE_TEXT
              and len(value) > settings.max_field_chars):
            problems.append((loc, f"at most {settings.max_field_chars} characters, not "
                             f"{len(value)}"))
    if problems:
        raise RequestValidationError([{"loc": loc, "msg": msg, "type": "too_long"}
                                      for loc, msg in problems])


def _walk(value: Any, loc: tuple) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name), (*loc, name))
        return
    yield loc, value
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*loc, i))
