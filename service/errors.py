"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"?}}``.

The handlers here cover what the app raises; ``service.limits`` answers over-large requests and
``service.http`` what the HTTP server itself refuses, in the same shape. OpenAPI declares, for
every route, the error responses it can give, with this shape as their schema.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException

from kb.errors import KBError, StorageBusy
from kb.redact import redact
from service.schemas import ErrorResponse

log = logging.getLogger("kb.service")

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
              413: "request_too_large", 414: "uri_too_long", 415: "unsupported_media_type"}
RETRY_AFTER = 1  # seconds a client waits before trying again when storage is busy


def clean(text: str) -> str:
    """Text an error may echo, made encodable: a lone surrogate becomes U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8")


def error(status: int, code: str, message: str, details: list | None = None,
          headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict = {"code": code, "message": clean(message)}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(KBError)
    async def kb_error(_: Request, exc: KBError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if isinstance(exc, StorageBusy):
            headers["Retry-After"] = str(getattr(exc, "retry_after", RETRY_AFTER))
        return error(exc.status, exc.code, exc.message, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error(400, "malformed_json", "request body is not valid JSON")
        details = [{"loc": [clean(str(p)) for p in e.get("loc", ())],
                    "message": clean(str(e.get("msg", "")))} for e in errors]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        return error(422, "invalid_request",
                     f"{'.'.join(first['loc'][1:]) or 'request'}: {first['message']}", details)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback says where; its messages may echo a query, so they are redacted.
        trace = redact("".join(traceback.format_exception(exc)))
        log.error("unexpected %s while handling %s %s\n%s", type(exc).__name__, request.method,
                  request.url.path, trace.rstrip())
        return error(500, "internal_error", "internal error; the service keeps running")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


# What each status means, for the routes that can give it.
DESCRIPTIONS = {
    400: "Malformed request (body is not valid JSON: bad syntax, invalid UTF-8, nested too "
         "deeply; or not HTTP)",
    401: "No valid key",
    403: "The key's role may not do this",
    404: "Unknown route, query or article",
    413: "Request body larger than KB_MAX_BODY_BYTES",
    414: "Request target longer than KB_MAX_URL_CHARS",
    415: "Request body not sent as application/json",
    422: "Invalid request: a field is missing, of the wrong type, or out of bounds",
    500: "Internal error (logged with its traceback; the service keeps running)",
    503: "No index loaded yet, or the query log is busy (see Retry-After)",
}


def error_statuses(path: str, operation: dict[str, Any], dependencies: set[int]) -> set[int]:
    """The error statuses an operation can answer with: those of any request, those its
    parameters and body imply, those its dependencies declare (``kb_errors``, e.g. 503 of
    ``get_engine``) and those the route declares itself (``responses=``)."""
    statuses = {400, 414, 500} | dependencies  # any request: malformed, a long URL, a bug
    if "requestBody" in operation:
        statuses |= {413, 415, 422}
    if operation.get("parameters"):
        statuses.add(422)
    if "{" in path:
        statuses.add(404)
    return statuses | {int(s) for s in operation.get("responses", {})
                       if str(s).isdigit() and int(s) >= 400}


def _dependency_errors(app: FastAPI) -> dict[tuple[str, str], set[int]]:
    """(path, method) → the statuses the route's dependencies declare, nested ones included."""
    found: dict[tuple[str, str], set[int]] = {}
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if not isinstance(context.original_route, APIRoute) or dependant is None:
            continue
        statuses: set[int] = set()
        pending = list(dependant.dependencies)
        while pending:
            dependency = pending.pop()
            statuses |= set(getattr(dependency.call, "kb_errors", ()))
            pending += dependency.dependencies
        for method in context.methods or ():
            found[(context.path_format or "", method.lower())] = statuses
    return found


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every operation's error responses declared as ErrorResponse
    (FastAPI's own 422 model, which the service never sends, replaced)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    model = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(model.pop("$defs", {}))
    components["ErrorResponse"] = model
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    dependencies = _dependency_errors(app)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(path, operation,
                                                dependencies.get((path, method), set()))):
                declared = responses.setdefault(str(status), {})
                if declared.get("description") in (None, "", "Validation Error"):
                    declared["description"] = DESCRIPTIONS.get(status, "Error")
                declared["content"] = {"application/json": {"schema": ref}}
    for unused in ("HTTPValidationError", "ValidationError"):  # in this order: one refers to
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):  # the other
            components.pop(unused, None)
    app.openapi_schema = schema
    return schema
