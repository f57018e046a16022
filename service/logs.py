"""The service's log: one JSON object a line (or plain text for people), each line of a request
carrying its request id.

The request id comes from the caller's ``X-Request-ID`` when it is short, made of safe
characters and holds no personal data (a proxy or the ticket system can then follow one request
through its logs and ours), else it is made here; it is returned in the response's
``X-Request-ID``. Uvicorn's access log is written in the same format; its request line is
redacted first (service.access_log), before any formatter sees it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kb.redact import redact_identifier

HEADER = "X-Request-ID"
_HEADER = HEADER.lower().encode()
MAX_ID = 128
SAFE_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:+=/-]{{0,{MAX_ID - 1}}}")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("kb_request_id",
                                                                         default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOGGERS = ("kb", "uvicorn", "uvicorn.error", "uvicorn.access")


def accepted_id(value: str | None) -> str | None:
    """The caller's request id, if it may be logged and echoed as it is: every log line of the
    request carries it, so one holding a phone number (13800138000) is not taken."""
    if value and SAFE_ID.fullmatch(value) and redact_identifier(value) == value:
        return value
    return None


def new_id() -> str:
    return secrets.token_hex(12)


class RequestIdFilter(logging.Filter):
    """Gives every record the id of the request being handled ('-' outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time, level, logger, message, request id, and for an access
    line its parts as fields of their own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level",
                                            "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(JSON_FIELDS, *args, **kwargs)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["request_id"] = getattr(record, "request_id", None) or request_id.get()
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) >= 5:
            client, method, path, version, status = record.args[:5]
            log_record.update(event="access", client=str(client), method=str(method),
                              path=str(path), http_version=str(version), status=int(str(status)))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        import datetime as dt

        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


def use_json(log_format: str, stream: Any = None) -> bool:
    if log_format == "auto":
        stream = stream or sys.stderr
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def config(log_format: str = "auto", level: str = "info") -> dict[str, Any]:
    """A logging.config dictionary for kb's and uvicorn's loggers; passed to uvicorn, which
    applies it in every worker process too."""
    formatter = ({"()": JsonLines} if use_json(log_format)
                 else {"format": TEXT_FORMAT})
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
               "formatter": "kb", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"kb": formatter},
        "handlers": {"kb": handler},
        "loggers": {name: {"handlers": ["kb"], "level": level.upper(), "propagate": False}
                    for name in LOGGERS},
    }


class RequestIds:
    """ASGI middleware: the request's id in the context of everything handling it, and in the
    response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v for k, v in scope["headers"] if k == _HEADER), None)
        rid = accepted_id(given.decode("latin-1") if given is not None else None) or new_id()
        token = request_id.set(rid)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_id.reset(token)
