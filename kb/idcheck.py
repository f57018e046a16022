"""Check digits of identity numbers that python-stdnum does not know: Taiwan national IDs (and
resident certificates of the same shape) and Hong Kong identity cards."""

from __future__ import annotations

# Taiwan gives each letter a two-digit code outside alphabetical order (I, O, W, Z came late).
_TAIWAN_LETTERS = {letter: code for code, letter in enumerate("ABCDEFGHJKLMNPQRSTUVXYWZIO", 10)}


def taiwan_id_valid(number: str) -> bool:
    """A letter, 1/2 (citizens) or 8/9 (residents), eight more digits with the check digit last."""
    number = number.upper()
    if len(number) != 10 or number[0] not in _TAIWAN_LETTERS or not number[1:].isdigit() \
            or number[1] not in "1289":
        return False
    code = _TAIWAN_LETTERS[number[0]]
    total = code // 10 + code % 10 * 9 + int(number[9])
    total += sum(int(d) * w for d, w in zip(number[1:9], range(8, 0, -1), strict=True))
    return total % 10 == 0


def hong_kong_id_valid(number: str) -> bool:
    """One or two letters, six digits and the check character (0-9 or A); brackets, a space
    before them and case do not matter."""
    number = number.upper().replace(" ", "").replace("(", "").replace(")", "")
    letters = len(number) - 7
    if letters not in (1, 2) or not number[:letters].isalpha() or not number[:letters].isascii() \
            or not number[letters:-1].isdigit():
        return False
    # A single letter stands for a leading space, worth 36; A-Z are 10-35.
    values = [36] * (2 - letters) + [ord(ch) - 55 for ch in number[:letters]]
    values += [int(d) for d in number[letters:-1]]
    remainder = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True)) % 11
    check = {0: "0", 1: "A"}.get(remainder, str(11 - remainder))
    return number[-1] == check
