"""Personal data out of free text: e-mails, phone numbers, identity documents (mainland, Taiwan
and Hong Kong IDs, passports, US social security numbers), bank cards and bank accounts.

Agents paste what customers tell them, so queries carry personal data. Everything the service
stores or logs goes through :func:`redact` first. Detection favours precision on the identifiers
agents search for legitimately (order numbers, ticket ids, error codes, dates, IPs, model
numbers): a number counts as an ID, a card or an account only when it validates (region,
birth date and check digit of a mainland ID; the check digit of a Taiwan or Hong Kong ID;
python-stdnum's rules for an SSN or an IBAN; Luhn and a card's issuer prefix and length) or
when a keyword introduces it ("护照号", "bank account"), and as a phone number when phonenumbers
accepts it or it comes in a shape, or after a word, people give phone numbers in. The word
nearest before a number decides between readings: "订单号" makes a reference of it, "卡号" a
card, "电话" a phone number, "身分證" an ID.

Identifiers (ticket ids, request ids) go through :func:`redact_identifier`, which also reads the
parts between their separators on their own: ``T-13800138000`` holds a phone number.

Detection runs on a shadow of the text in which fullwidth forms and other Unicode digits are
ASCII and invisible format characters (zero-width spaces, bidi marks) are gone, so
``1\u200b3\u200b8…`` and ``１３８…`` are found; the spans are mapped back to the original.

Every pattern has bounded repetition and is anchored so that a failed attempt at one position
cannot rescan the rest of the text: the work is linear in the length of the input.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.us import ssn

from kb.idcheck import hong_kong_id_valid, taiwan_id_valid

PLACEHOLDERS = {"EMAIL": "[EMAIL]", "PHONE": "[PHONE]", "ID": "[ID]", "CARD": "[CARD]",
                "ACCOUNT": "[ACCOUNT]"}

# Python's \w matches CJK, so "手机13812345678" would have no word boundary: bound digit runs by
# digits and identifier glue instead. Letters right before a number make it part of an
# identifier (KB5034441, SO-2026…) unless they are a keyword such as "ID" or "tel".
_L = r"(?<![0-9_])(?<![A-Za-z0-9][\-.#])"
_R = r"(?!\d)(?![\-.]\d)"
_SEP = r"[ \-.]?"
# The same for a token that starts with a letter (A123456789): no letter before it either.
_W = r"(?<![A-Za-z0-9_])(?<![A-Za-z0-9][\-.#])"

_MOBILE = re.compile(
    r"(?:(?:\+|00)86[ \-]?|\(\+?86\) ?|(?<![0-9])86[ \-]|" + _L + ")"
    r"1[3-9]\d(?:" + _SEP + r"\d{4}){2}" + _R)
_LANDLINE = re.compile(
    r"(?:\(0\d{2,3}\) ?|" + _L + r"0\d{2,3}[ \-])[2-9]\d{2,3}[ \-]?\d{4}"
    r"(?: ?(?:ext\.?|x|转|轉|分机|分機|-) ?\d{1,5})?" + _R, re.IGNORECASE)
_TAIWAN_MOBILE = re.compile(_L + r"09\d{2}[ \-]\d{3}[ \-]\d{3}" + _R)
_INTERNATIONAL = re.compile(
    r"(?<![A-Za-z0-9_+])(?:\+|00)[1-9]\d{0,2}[ \-]?(?:\(\d{1,4}\)[ \-]?)?\d{1,4}"
    r"(?:[ \-.]?\d{1,4}){1,4}" + _R)
# North American (415) 555-0132 and 415-555-0132; 400/800 hotlines are businesses, not people.
_NANP = re.compile(r"(?:\(\d{3}\) ?|" + _L + r"(?!400|800)\d{3}[\-. ])\d{3}[\-. ]\d{4}" + _R)
# Digit runs a keyword can make a phone number or a card: 7 to 19 digits, grouped or not.
_NUMBER = re.compile(_L + r"\d(?:[ \-.]?\d){6,18}" + _R)
_ID = re.compile(_L + r"\d{6} ?(?:18|19|20)\d{2}[01]\d[0-3]\d ?\d{3}[\dXx](?![0-9A-Za-z])")
_CARD = re.compile(_L + r"\d{4}(?:[ \-]?\d{1,4}){2,4}" + _R)
_TAIWAN_ID = re.compile(_W + r"[A-Za-z][1289]\d{8}(?![A-Za-z0-9])")
_HONG_KONG_ID = re.compile(_W + r"[A-Za-z]{1,2}\d{6}(?: ?\([0-9Aa]\)|[0-9Aa](?![A-Za-z0-9]))")
_SSN = re.compile(_L + r"\d{3}-\d{2}-\d{4}" + _R)
# Country, check digits, then groups of four: a word after the last group is cut off later.
_IBAN = re.compile(_W + r"[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?"
                   r"(?![A-Za-z0-9])")
# What an ID keyword may introduce: a document number (E12345678) or an SSN in groups.
_KEYED_ID = re.compile(_W + r"(?:\d{3}[ \-]\d{2}[ \-]\d{4}|[A-Za-z0-9]{6,20})(?![A-Za-z0-9])")
# What an account keyword may introduce: 8 to 30 digits, grouped or not.
_ACCOUNT = re.compile(_L + r"\d(?:[ \-]?\d){7,29}" + _R)
_COMPACT_DATE = re.compile(r"(?:19|20)\d{2}[01]\d[0-3]\d")
_DATE = re.compile(r"(?:19|20)\d{2}[\-.]\d{1,2}[\-.]\d{1,2}")
# Separators inside an identifier; each part between them is read on its own too.
_ID_SEPARATOR = re.compile(r"[\-_.#:/|~,;=+]")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9\u4e00-\u9fff](?:[A-Za-z0-9\-\u4e00-\u9fff]{0,61}[A-Za-z0-9\u4e00-\u9fff])?"
    r"\.){1,8}(?:[A-Za-z]{2,24}|中国|中國|公司|网络|網絡|香港|台湾|台灣)(?![A-Za-z0-9])")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")

# The words that tell what the number after them is; the nearest one before a number decides.
_WORDS = {
    "REF": ["订单号码", "订单编号", "订单号", "订单", "訂單號碼", "訂單編號", "訂單號", "訂單",
            "运单号", "运单", "運單號", "運單", "工单号码", "工单编号", "工单号", "工单",
            "工單號碼", "工單號", "工單", "单号", "單號", "流水号", "流水號", "交易号", "交易號",
            "物流", "快递", "快遞", "发票号码", "发票号", "發票號碼", "發票號", "编号", "編號",
            "序列号", "序號", "型号", "型號", "批次号", "批次號", "案件号", "合同号", "合同號"],
    "PHONE": ["手机号码", "手機號碼", "电话号码", "電話號碼", "联系电话", "聯絡電話", "联系方式",
              "聯絡方式", "联系号码", "手机号", "手機號", "手机", "手機", "电话", "電話", "座机",
              "座機", "号码", "號碼", "来电", "來電", "回电", "回電", "致电", "致電", "打给",
              "打給", "微信", "短信", "简讯", "簡訊"],
    "CARD": ["银行卡号", "銀行卡號", "银行卡", "銀行卡", "信用卡", "储蓄卡", "儲蓄卡", "借记卡",
             "借記卡", "卡号", "卡號", "银联", "銀聯", "卡"],
    # Identity documents. Taiwan writes 身分證, the mainland 身份证; both are typed either way.
    "ID": ["身份证号码", "身份證號碼", "身份证号", "身份證號", "身份证", "身份證", "身份证字号",
           "身份證字號", "身分證字號", "身分證號碼", "身分證號", "身分證", "身分证字号", "身分证号码",
           "身分证号", "身分证", "居留證號碼", "居留證號", "居留證", "居留证号码", "居留证号",
           "居留证", "居住证", "居住證", "证件号码", "證件號碼", "证件号", "證件號", "证件", "證件",
           "实名", "實名", "护照号码", "护照号", "护照", "護照號碼", "護照號", "護照", "通行证号码",
           "通行证号", "通行证", "通行證號碼", "通行證號", "通行證", "回乡证", "回鄉證", "台胞证",
           "台胞證", "驾驶证", "駕駛證", "驾照", "駕照", "社会安全号码", "社會安全號碼"],
    "ACCOUNT": ["银行账号", "銀行帳號", "银行帐号", "銀行賬號", "银行账户", "銀行帳戶", "银行帐户",
                "銀行賬戶", "账户号码", "账户号", "帐户号码", "帐户号", "帳戶號碼", "帳戶號",
                "賬戶號碼", "賬戶號", "收款账号", "收款帳號", "收款账户", "收款帳戶", "对公账号",
                "对公账户", "戶口號碼", "户口号码", "银行户口", "銀行戶口"],
}
_ENGLISH = {
    "REF": ["order", "tracking", "ticket", "invoice", "ref", "reference", "case", "serial", "sn",
            "model", "sku", "part", "po", "incident", "req", "build", "version"],
    "PHONE": ["phone", "mobile", "tel", "telephone", "cell", "call", "contact", "whatsapp", "sms",
              "text", "fax"],
    "CARD": ["card", "visa", "mastercard", "amex", "unionpay", "credit", "debit"],
    "ID": ["passport", "passport id", "ssn", "social security", "national id", "id card",
           "identity card", "hkid", "hkic"],
    "ACCOUNT": ["bank account", "bank acct", "account number", "account no", "account no.",
                "acct", "iban", "checking account", "savings account"],
    # A bare "id" says a value follows, not what it is (query id, user id): its shape decides.
    "LABEL": ["id", "identity"],
}


def _keyword_table() -> dict[str, list[tuple[str, str, bool]]]:
    """Keywords by their first character (lower case), longest first: (word, kind, English)."""
    table: dict[str, list[tuple[str, str, bool]]] = {}
    for words, english in ((_WORDS, False), (_ENGLISH, True)):
        for kind, ws in words.items():
            for w in ws:
                table.setdefault(w[0].lower(), []).append((w.lower(), kind, english))
    for entries in table.values():
        entries.sort(key=lambda e: -len(e[0]))
    return table


_KEYWORDS = _keyword_table()
_WINDOW = 24  # characters before a number searched for its keyword
# What may stand between a keyword and the number it introduces.
_GLUE = re.compile(r"[\s:：#＃是为為的]{0,4}(?:(?:number|no\.?|is|nr\.?)[\s:：#]{0,3}){0,2}\(?",
                   re.IGNORECASE)

# Issuer prefixes and the lengths their cards come in.
_CARD_ISSUERS = [
    (re.compile(r"4"), {13, 16, 19}),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), {16}),  # Mastercard
    (re.compile(r"3[47]"), {15}),  # American Express
    (re.compile(r"62|81"), {16, 17, 19}),  # UnionPay
    (re.compile(r"35"), {16, 17, 18, 19}),  # JCB
    (re.compile(r"6011|64[4-9]|65"), {16, 19}),  # Discover
    (re.compile(r"60|9"), {16, 19}),  # other Chinese debit cards (60…, 9… bank-own BINs)
]
# The first two digits of a mainland ID: the province.
_PROVINCES = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45,
              46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
# Text without any of these holds nothing to redact: the common case, answered at once.
_MAYBE = re.compile(r"[\d@＠]|[〇一二三四五六七八九零幺]{3}")
_HOTLINE = re.compile(r"(?:400|800)\d{7}|95\d{3,6}|1[01]\d{3}")


@dataclass(frozen=True)
class PiiSpan:
    kind: str  # one of PLACEHOLDERS
    start: int
    end: int


@functools.cache
def _shadow_table() -> dict[int, str | None]:
    """Characters the shadow text replaces: fullwidth and other digits, dashes, Chinese
    numerals as digits; invisible format characters dropped."""
    table: dict[int, str | None] = {}
    for code in range(0x80, 0x10000):
        ch = chr(code)
        category = unicodedata.category(ch)
        if category == "Cf":
            table[code] = None
        elif category == "Nd":
            table[code] = str(unicodedata.decimal(ch))
        elif 0xFF01 <= code <= 0xFF5E:
            table[code] = chr(code - 0xFEE0)
        elif category == "Pd" or ch == "\u2212":
            table[code] = "-"
        elif category == "Zs":
            table[code] = " "
    return table


# Chinese numerals, as a phone number read out and typed (幺三八…), count as digits; not in
# e-mail addresses, where 张三 is a name.
_NUMERALS = str.maketrans({**{c: str(d) for d, c in enumerate("〇一二三四五六七八九")},
                           "零": "0", "幺": "1"})


def _shadow(text: str) -> tuple[str, list[int] | None]:
    """The text e-mails are looked for in, and the original position of each of its
    characters (None: the same positions). Numbers are looked for in its translation by
    ``_NUMERALS``, of the same length."""
    table = _shadow_table()
    shadow = text.translate(table)
    if len(shadow) == len(text):
        return shadow, None
    keep = [i for i, ch in enumerate(text) if table.get(ord(ch), ch) is not None]
    return shadow, keep


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


class _Context:
    """The keyword nearest before each position of one text (looked up in a short window)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._before: dict[int, tuple[str | None, bool]] = {}

    def before(self, start: int) -> tuple[str | None, bool]:
        """The kind of the nearest keyword before ``start``, and whether it introduces the
        number there directly (nothing but glue between)."""
        if start not in self._before:
            found = self._last_keyword(max(0, start - _WINDOW), start)
            if found is None:
                self._before[start] = (None, False)
            else:
                kind, end = found
                glue = _GLUE.match(self.text, end, start)
                self._before[start] = (kind, glue is not None and glue.end() == start)
        return self._before[start]

    def _last_keyword(self, lo: int, hi: int) -> tuple[str, int] | None:
        """The kind and end of the last keyword in ``text[lo:hi]``, read left to right taking
        the longest keyword at each position; English ones as whole words."""
        text, last, i = self.text, None, lo
        while i < hi:
            for word, kind, english in _KEYWORDS.get(text[i].lower(), ()):
                end = i + len(word)
                if end > hi or text[i:end].lower() != word:
                    continue
                if english and ((i > 0 and _ascii_letter(text[i - 1]))
                                or (end < hi and _ascii_letter(text[end]))):
                    continue
                last, i = (kind, end), end
                break
            else:
                i += 1
        return last

    def glued_to_identifier(self, start: int) -> bool:
        """The number continues an identifier (KB5034441) rather than following a keyword
        (ID110105…, tel13812345678)."""
        if start == 0 or not self.text[start - 1].isascii() or not self.text[start - 1].isalpha():
            return False
        kind, direct = self.before(start)
        return not (kind in ("PHONE", "ID", "CARD", "ACCOUNT", "LABEL") and direct)


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _valid_id(number: str, ctx: _Context, start: int) -> bool:
    number = number.replace(" ", "").upper()
    if int(number[:2]) not in _PROVINCES:
        return False
    born = _date(number[6:14])
    if born is None or not date(1890, 1, 1) <= born <= date.today():
        return False
    if ric.calc_check_digit(number[:-1]) == number[-1]:
        return True
    # A mistyped check digit is still somebody's ID number, unless an order number is meant.
    kind, direct = ctx.before(start)
    return not (kind == "REF" and direct)


def _valid_document(ctx: _Context, start: int, valid: bool) -> bool:
    """A Taiwan or Hong Kong ID or an SSN: after an ID keyword whether it validates or not;
    else when it validates, unless a reference keyword introduces it (a single check digit is
    no proof against an order number like 订单号 A123456789)."""
    kind, direct = ctx.before(start)
    if kind == "ID" and direct:
        return True
    return valid and not (kind == "REF" and direct)


def _keyed_id(raw: str, ctx: _Context, start: int) -> bool:
    """A passport or other document number: any token with five digits or more right after an
    ID keyword, unless it is a date (护照 20300101 到期)."""
    if ctx.before(start) != ("ID", True) or sum(ch.isdigit() for ch in raw) < 5:
        return False
    return not (_COMPACT_DATE.fullmatch(raw) and _date(raw) is not None)


def _date(digits: str) -> date | None:
    """The date ``YYYYMMDD`` stands for, if it is one."""
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _iban_length(raw: str, keyed: bool) -> int | None:
    """The length of the valid IBAN ``raw`` starts with, cut between groups (the pattern may
    have taken a word after it); after an account keyword all of it, valid or mistyped."""
    cuts = [len(raw)] + [i for i in range(len(raw) - 1, 0, -1) if raw[i] == " "]
    for cut in cuts:
        if iban.is_valid(raw[:cut]):
            return cut
    return len(raw) if keyed else None


def _card_like(digits: str) -> bool:
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_ISSUERS)


def _is_card(raw: str, ctx: _Context, start: int) -> bool:
    digits = _digits(raw)
    if not 13 <= len(digits) <= 19 or not luhn.is_valid(digits):
        return False
    kind, direct = ctx.before(start)
    if kind == "CARD":
        return True
    grouped = bool(re.fullmatch(r"\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,3})?|\d{4}[ \-]\d{6}[ \-]\d{5}",
                                raw))
    if grouped:
        return True
    # "订单号 4111111111111111": the number the keyword introduces is the order's.
    if kind == "REF" and direct:
        return False
    return _card_like(digits)


def _possible_phone(raw: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


def _valid_phone(raw: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(raw, region))
    except phonenumbers.NumberParseException:
        return False


def _emails(text: str) -> list[tuple[int, int]]:
    """E-mail spans, found from each "@" outwards (a scan from every position that turns out
    to hold no "@" would be quadratic)."""
    spans = []
    at = text.find("@")
    while at != -1:
        start, ascii_part = at, False
        # A local part may be in another script too: 张三@example.cn, müller@example.de.
        while start > 0 and at - start < 64:
            ch = text[start - 1]
            if ch in _EMAIL_LOCAL:
                ascii_part = True
            elif not _name_char(ch, ascii_part):
                break
            start -= 1
        while start < at and text[start] == ".":
            start += 1
        domain = _DOMAIN.match(text, at + 1)
        if start < at and domain:
            spans.append((start, domain.end()))
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)
    return spans


def _name_char(ch: str, after_ascii: bool) -> bool:
    """Part of a non-ASCII local part. Han, kana and hangul right before an ASCII local part are
    the sentence (邮箱是wang@…), not the address."""
    if ch.isascii() or not ch.isalpha():
        return False
    cjk = "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af"
    return not (cjk and after_ascii)


def find_pii(text: str) -> list[PiiSpan]:
    """Non-overlapping personal-data spans in ``text``, in order of position."""
    if not _MAYBE.search(text):
        return []
    letters, positions = _shadow(text)
    shadow = letters.translate(_NUMERALS)
    ctx = _Context(shadow)
    found: list[PiiSpan] = []  # sorted by position, never overlapping

    def add(kind: str, start: int, end: int) -> None:
        i = bisect.bisect(found, start, key=lambda s: s.start)
        if (i == 0 or found[i - 1].end <= start) and (i == len(found) or end <= found[i].start):
            found.insert(i, PiiSpan(kind, start, end))

    def scan(kind: str, pattern: re.Pattern[str], accept: Callable[[re.Match[str]], bool]) -> None:
        for m in pattern.finditer(shadow):
            start = m.start()
            if not (shadow[start] in "+(" or not ctx.glued_to_identifier(start)):
                continue
            # Letters right after: an identifier (13494285701c91da), unless a keyword of this
            # kind introduces the number (号码13812345673abc).
            end = m.end()
            if end < len(shadow) and _ascii_letter(shadow[end]) and ctx.before(start) != (
                    kind, True):
                continue
            if accept(m):
                add(kind, start, m.end())

    for start, end in _emails(letters):
        add("EMAIL", start, end)
    # Before cards and phone numbers, which would take the digit groups of an IBAN.
    for m in _IBAN.finditer(shadow):
        length = _iban_length(m.group(), ctx.before(m.start()) == ("ACCOUNT", True))
        if length is not None:
            add("ACCOUNT", m.start(), m.start() + length)
    scan("ID", _ID, lambda m: _valid_id(m.group(), ctx, m.start()))
    scan("ID", _TAIWAN_ID, lambda m: _valid_document(ctx, m.start(), taiwan_id_valid(m.group())))
    # Without brackets round its check digit, a Hong Kong ID is shaped like KB5034441.
    scan("ID", _HONG_KONG_ID, lambda m: _valid_document(
        ctx, m.start(), "(" in m.group() and hong_kong_id_valid(m.group())))
    scan("ID", _SSN, lambda m: _valid_document(ctx, m.start(), ssn.is_valid(m.group())))
    scan("CARD", _CARD, lambda m: _is_card(m.group(), ctx, m.start()))
    scan("ID", _KEYED_ID, lambda m: _keyed_id(m.group(), ctx, m.start()))
    scan("ACCOUNT", _ACCOUNT, lambda m: ctx.before(m.start()) == ("ACCOUNT", True)
         and not _DATE.fullmatch(m.group()))
    scan("PHONE", _MOBILE, lambda m: True)
    scan("PHONE", _INTERNATIONAL,
         lambda m: _possible_phone("+" + m.group().removeprefix("+").removeprefix("00"), None))
    scan("PHONE", _LANDLINE, lambda m: ctx.before(m.start()) != ("REF", True))
    scan("PHONE", _TAIWAN_MOBILE, lambda m: True)
    scan("PHONE", _NANP, lambda m: True)
    scan("PHONE", _NUMBER, lambda m: _keyword_number(m.group(), ctx, m.start()))
    if positions is None:
        return found
    return [PiiSpan(s.kind, positions[s.start], positions[s.end - 1] + 1) for s in found]


def _keyword_number(raw: str, ctx: _Context, start: int) -> bool:
    """A bare number is a phone number after a phone keyword (HK 9123 4567, a landline without
    its area code), or when it is a valid mainland landline with its area code (02087654321)."""
    digits = _digits(raw)
    if _HOTLINE.fullmatch(digits) or _DATE.fullmatch(raw):
        return False
    kind, direct = ctx.before(start)
    if kind == "PHONE" and direct:
        return 7 <= len(digits) <= 12
    if kind == "REF":
        return False
    return digits.startswith("0") and 10 <= len(digits) <= 12 and _valid_phone(digits, "CN")


def redact(text: str) -> str:
    """``text`` with every personal-data span replaced by its placeholder, e.g. ``[PHONE]``."""
    return _replace(text, find_pii(text))


def redact_identifier(value: str) -> str:
    """An identifier (ticket id, request id) redacted as free text, then once more with its
    separators read as spaces: in free text T-13800138000 is one identifier, but an identifier
    made of a prefix and a phone number still holds the phone number."""
    text = redact(value)
    return _replace(text, find_pii(_ID_SEPARATOR.sub(" ", text)))


def _replace(text: str, spans: list[PiiSpan]) -> str:
    out, last = [], 0
    for span in spans:
        out += [text[last:span.start], PLACEHOLDERS[span.kind]]
        last = span.end
    out.append(text[last:])
    return "".join(out)


def redact_values(value: Any) -> Any:
    """``value`` (a filter dict, a list of tags, a string) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item) for item in value]
    return value
