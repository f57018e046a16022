import csv
import io

import pytest

from kb.csvsafe import csv_text, safe_cell


@pytest.mark.parametrize(("cell", "shown"), [
    ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("vpn 809 错误", "vpn 809 错误"),
    ("a=b", "a=b"),
    ("", ""),
    (-3, -3),
    (2.5, 2.5),
    (None, None),
])
def test_safe_cell(cell, shown):
    assert safe_cell(cell) == shown


def test_csv_text_makes_every_cell_safe_and_stays_valid_csv():
    text = csv_text(["id", "=header"], [["t1", '=HYPERLINK("x")'], ["t2", "line\nbreak, \"q\""],
                                        ["t3", -1]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["id", "'=header"], ["t1", "'=HYPERLINK(\"x\")"],
                    ["t2", "line\nbreak, \"q\""], ["t3", "-1"]]
