"""Uvicorn's access log, with personal data taken out of the request line.

``GET /search?q=…`` puts the agent's query, and whatever phone number or e-mail it holds, into
every access-log line; a log is a record, so it gets the same redaction as the gap log.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

from kb.redact import redact


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access formats (client, method, path with query, http version, status).
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = redact(unquote_plus(str(args[2])))
            record.args = tuple(args)
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactingFilter) for f in access.filters):
        access.addFilter(RedactingFilter())
