from pathlib import Path

import pytest

from kb.config import Settings, load_settings
from kb.errors import KBError


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("KB_PORT", "9000")
    monkeypatch.setenv("kb_articles", "docs")  # names are matched without regard to case
    cfg = load_settings(port=9100, index=None)
    assert (cfg.port, cfg.articles, cfg.index) == (9100, Path("docs"), Path("index"))


def test_another_process_environment_replaces_this_one(monkeypatch):
    monkeypatch.setenv("KB_GAP_DB", "/here/gaps.sqlite3")
    monkeypatch.setenv("KB_KEEP_VERSIONS", "7")
    cfg = load_settings({"KB_ARTICLES": "kb", "PATH": "/bin"}, index="idx")
    assert cfg == Settings(articles=Path("kb"), index=Path("idx"), gap_db=None, keep_versions=3)


def test_invalid_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("KB_BATCH_SIZE", "many")
    with pytest.raises(KBError, match=r"KB_BATCH_SIZE='many': Input should be a valid integer"):
        load_settings()
    with pytest.raises(KBError, match=r"KB_BACKEND='tpu'"):
        load_settings({"KB_BACKEND": "tpu"})
