"""Personal data out of free text: e-mails, phone numbers, Chinese ID numbers, bank cards.

Agents paste what customers tell them, so queries carry personal data. Everything the service
stores or logs goes through :func:`redact` first. Detection favours precision on the identifiers
agents search for legitimately (order numbers, error codes, dates, IPs, versions): a digit run
counts as an ID or a card only when it validates (birth date; Luhn), and as a phone number only
in a shape people type phone numbers in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from stdnum import luhn

PLACEHOLDERS = {"EMAIL": "[EMAIL]", "PHONE": "[PHONE]", "ID": "[ID]", "CARD": "[CARD]"}

# Python's \w matches CJK, so "手机13812345678" would have no word boundary: bound digit runs by
# ASCII letters, digits and identifier glue instead.
_L = r"(?<![A-Za-z0-9_\-/.+])"
_R = r"(?![A-Za-z0-9_\-/]|\.\d)"
_SEP = r"[ \-\u00a0]?"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_ID = re.compile(_L + r"\d{6}(?:19|20)\d{2}[01]\d[0-3]\d\d{3}[\dXx]" + _R)
_CARD = re.compile(_L + r"\d{4}(?:[ \-]?\d{1,4}){2,4}" + _R)
_PHONES = [
    # Mainland mobile, with or without +86 / 0086 / (+86), grouped 3-4-4 or not at all.
    re.compile(r"(?:(?:\+|00)86[ \-]?|\(\+?86\) ?|" + _L + ")"
               r"1[3-9]\d(?:" + _SEP + r"\d{4}){2}" + _R),
    # Mainland landline: area code 0xx(x), optionally bracketed, then 7-8 digits, optional ext.
    re.compile(r"(?:\(0\d{2,3}\) ?|" + _L + r"0\d{2,3}" + _SEP + r")[2-9]\d{2,3}" + _SEP
               + r"\d{4}(?: ?(?:ext\.?|转|轉|-) ?\d{1,5})?" + _R),
    # Taiwan mobile 09xx-xxx-xxx.
    re.compile(_L + r"09\d{2}" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _R),
    # International with a country code: +852 9123 4567, +1 (415) 555-0132, +44 20 7946 0958.
    re.compile(r"(?<![A-Za-z0-9_])\+\d{1,3}[ \-]?(?:\(\d{1,4}\)[ \-]?)?\d{2,4}(?:[ \-]?\d{2,4}){1,3}"
               + _R),
    # North American (415) 555-0132 and 415-555-0132; 400/800 hotlines are businesses, not people.
    re.compile(r"(?:\(\d{3}\) ?|" + _L + r"(?!400|800)\d{3}[\-. ])\d{3}[\-. ]\d{4}" + _R),
]
# A bare number right after the word "phone" is a phone number whatever its shape (HK 9123 4567).
_KEYWORD_PHONE = re.compile(
    r"(?:电话|電話|手机|手機|手机号|手機號|号码|號碼|联系方式|聯絡方式|phone|mobile|tel|cell|call)"
    r"(?:\s*(?:number|no\.?|is|[:：是为為]))?\s*(\d(?:[ \-]?\d){6,11})" + _R,
    re.IGNORECASE)
# Long numbers next to these words are references, not cards.
_REFERENCE_WORDS = re.compile(
    r"订单|訂單|单号|單號|运单|運單|工单|工單|流水|\b(?:order|tracking|ticket|invoice|ref)\b", re.I)


@dataclass(frozen=True)
class PiiSpan:
    kind: str  # one of PLACEHOLDERS
    start: int
    end: int


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _valid_id(number: str) -> bool:
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    # A mistyped check digit is still somebody's ID number: the birth date is the evidence.
    return int(number[:2]) >= 11


def _is_reference(text: str, start: int) -> bool:
    return bool(_REFERENCE_WORDS.search(text[max(0, start - 12):start]))


def find_pii(text: str) -> list[PiiSpan]:
    """Non-overlapping personal-data spans in ``text``, in order of position."""
    found: list[PiiSpan] = []

    def add(kind: str, start: int, end: int) -> None:
        if all(end <= s.start or start >= s.end for s in found):
            found.append(PiiSpan(kind, start, end))

    for m in _EMAIL.finditer(text):
        add("EMAIL", m.start(), m.end())
    for m in _ID.finditer(text):
        if _valid_id(m.group()):
            add("ID", m.start(), m.end())
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits) and not _is_reference(text, m.start()):
            add("CARD", m.start(), m.end())
    for pattern in _PHONES:
        for m in pattern.finditer(text):
            add("PHONE", m.start(), m.end())
    for m in _KEYWORD_PHONE.finditer(text):
        add("PHONE", m.start(1), m.end(1))
    return sorted(found, key=lambda s: s.start)


def redact(text: str) -> str:
    """``text`` with every personal-data span replaced by its placeholder, e.g. ``[PHONE]``."""
    out, last = [], 0
    for span in find_pii(text):
        out += [text[last:span.start], PLACEHOLDERS[span.kind]]
        last = span.end
    out.append(text[last:])
    return "".join(out)
