"""Uvicorn's access log, with personal data taken out of the request line.

``GET /search?q=…`` puts the agent's query, and whatever phone number or e-mail it holds, into
every access-log line; a log is a record, so it gets the same redaction as the gap log. The
target is decoded to be redacted; control characters it then holds (``%0A``, ``%1B``) are
encoded again, so a client cannot start a forged line or move the cursor of a terminal.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote_plus

from kb.redact import redact

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_target(target: str) -> str:
    """The request target as the log shows it: decoded, redacted, one printable line."""
    return _CONTROL.sub(lambda m: quote(m.group(), safe=""), redact(unquote_plus(target)))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access formats (client, method, path with query, http version, status).
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = clean_target(str(args[2]))
            record.args = tuple(args)
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactingFilter) for f in access.filters):
        access.addFilter(RedactingFilter())
