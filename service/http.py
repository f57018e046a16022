"""Uvicorn's HTTP protocols with the project's error shape for what they refuse themselves.

A request uvicorn cannot parse (a broken request line, a request head longer than h11's buffer)
never reaches the app: uvicorn answers a plain-text ``400 Invalid HTTP request received.``.
These subclasses answer it as every other error, ``{"error": {"code", "message"}}``; a request
head longer than h11's buffer is a 431 from either parser. ``kb serve`` gives h11 a buffer
larger than ``KB_MAX_URL_CHARS`` so that an over-long URL reaches the app and gets its 414.
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_ALLOWANCE = 65536  # bytes of request headers h11 buffers beyond the longest URL accepted


def error_body(status: int) -> bytes:
    code, message = {
        431: ("request_head_too_large", "the request line and headers are too long"),
    }.get(status, ("malformed_http", "the request is not valid HTTP/1.1"))
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Connection(h11.Connection):
    """h11's connection, remembering the protocol error it last raised."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class JSONErrorsH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, self.conn._max_incomplete_event_size)

    def send_400_response(self, msg: str) -> None:
        error = getattr(self.conn, "last_error", None)
        status = error.error_status_hint if error is not None else 400
        body = error_body(status)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=status, headers=headers)))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


try:  # httptools is optional; h11 serves without it
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:
    HttpToolsProtocol = None  # type: ignore[assignment, misc]


class _HeadTooLarge(Exception):
    pass


if HttpToolsProtocol is not None:
    # Defined at module level: ``kb serve --workers N`` sends it to each worker process.
    class JSONErrorsHttpToolsProtocol(HttpToolsProtocol):
        """httptools buffers a request head of any size; this one stops at h11's limit
        (``h11_max_incomplete_event_size``), so both parsers refuse the same heads with 431."""

        _head = 0
        _too_large = False

        def on_message_begin(self) -> None:
            self._head = 0
            super().on_message_begin()

        def _count(self, n: int) -> None:
            self._head += n
            limit = self.config.h11_max_incomplete_event_size or HEAD_ALLOWANCE
            if self._head > limit:
                self._too_large = True
                raise _HeadTooLarge  # httptools raises it out of feed_data as a parser error

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            status = 431 if self._too_large else 400
            body = error_body(status)
            reason = b"Request Header Fields Too Large" if status == 431 else b"Bad Request"
            head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: application/json\r\n",
                     b"content-length: " + str(len(body)).encode() + b"\r\n",
                     b"connection: close\r\n\r\n", body]
            self.transport.write(b"".join(head))
            self.transport.close()


def _httptools_protocol() -> type | None:
    return JSONErrorsHttpToolsProtocol if HttpToolsProtocol is not None else None


def protocol() -> type:
    """The protocol ``kb serve`` runs: httptools' when installed (uvicorn's own choice), else
    h11's, both answering their errors in JSON."""
    return _httptools_protocol() or JSONErrorsH11Protocol


def uvicorn_options(max_url_chars: int) -> dict[str, Any]:
    return {"http": protocol(), "h11_max_incomplete_event_size": max_url_chars + HEAD_ALLOWANCE}
