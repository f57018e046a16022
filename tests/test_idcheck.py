"""Check digits of Taiwan and Hong Kong identity numbers."""

import pytest

from kb.idcheck import hong_kong_id_valid, taiwan_id_valid


@pytest.mark.parametrize(("number", "valid"), [
    ("A123456789", True), ("a123456789", True), ("F223456786", True),
    ("A800000014", True),  # a resident certificate
    ("I123456781", True), ("O234567896", True), ("Z912345674", True),  # the letters out of order
    ("A123456788", False), ("A323456789", False), ("AB12345678", False), ("A12345678", False),
])
def test_taiwan_ids(number, valid):
    assert taiwan_id_valid(number) is valid


@pytest.mark.parametrize(("number", "valid"), [
    ("A123456(3)", True), ("a123456 (3)", True), ("A1234563", True), ("AB987654(3)", True),
    ("A100004(A)", True), ("A100009(0)", True),  # check values 10 and 11
    ("A123456(4)", False), ("A12345(3)", False), ("ABC123456(3)", False), ("1123456(3)", False),
])
def test_hong_kong_ids(number, valid):
    assert hong_kong_id_valid(number) is valid
