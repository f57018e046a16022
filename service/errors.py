"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"?}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kb.errors import KBError

log = logging.getLogger("kb.service")


def error(status: int, code: str, message: str, details: list | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(KBError)
    async def kb_error(_: Request, exc: KBError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error(400, "malformed_json", "request body is not valid JSON")
        details = [{"loc": [str(p) for p in e.get("loc", ())], "message": e.get("msg", "")}
                   for e in errors]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        return error(422, "invalid_request",
                     f"{'.'.join(first['loc'][1:]) or 'request'}: {first['message']}", details)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Log the type only: the message may echo a query with personal data in it.
        log.error("unexpected %s while handling a request", type(exc).__name__)
        return error(500, "internal_error", "internal error; the service keeps running")
