"""JSON request bodies: a body of another media type is a 415, and a body that does not parse
is one 400 ``malformed_json`` saying what is wrong with it.

FastAPI on its own validates a text/plain or form body as raw bytes (422 "Input should be a
valid dictionary") and answers invalid UTF-8 or deep nesting with a bare 400 "There was an
error parsing the body". Routers whose routes take a JSON body use ``JSONBodyRoute``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.errors import error

JSON_TYPE = "application/json"


def media_type(content_type: str) -> str:
    """``type/subtype`` of a Content-Type header, its parameters left out."""
    message = Message()
    message["content-type"] = content_type
    return message.get_content_type()


def is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, whatever its parameters (FastAPI's own rule)."""
    if not content_type:
        return False
    main, _, sub = media_type(content_type).partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def body_problem(request: Request) -> Response | None:
    """The error for a body that is not JSON, or None. The parsed body stays cached on the
    request, so the route's own parsing does not parse it again."""
    body = await request.body()
    if not body:
        return None  # no body: the missing fields are the usual 422
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        sent = f"as {media_type(content_type)}" if content_type else "without a Content-Type"
        return error(415, "unsupported_media_type",
                     f"the request body must be JSON, sent with Content-Type: {JSON_TYPE}; "
                     f"this one came {sent}")
    try:
        await request.json()
    except UnicodeDecodeError as exc:
        problem = f"invalid UTF-8 at byte {exc.start}"
    except RecursionError:
        problem = "nested too deeply"
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    else:
        return None
    return error(400, "malformed_json", f"request body is not valid JSON: {problem}")


class JSONBodyRoute(APIRoute):
    """A route whose JSON body is checked (media type, encoding, syntax) before FastAPI
    validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def checked(request: Request) -> Response:
            return await body_problem(request) or await handler(request)

        return checked
