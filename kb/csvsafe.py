"""CSV that a spreadsheet opens as data: no cell is run as a formula.

A gap report's examples are what customers typed; a cell such as ``=HYPERLINK("http://…")``
would be a live formula in Excel or LibreOffice. Every CSV the project writes goes through
:func:`csv_text`, which prefixes cells starting with ``= + - @`` (or a tab or carriage return,
which spreadsheets skip before reading a formula) with an apostrophe, as OWASP recommends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value``, with an apostrophe before it when a spreadsheet would read it as a formula.
    Numbers stay numbers (a negative count is not a formula)."""
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """The CSV document of ``rows`` under ``header``, every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()
