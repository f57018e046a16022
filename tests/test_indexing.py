"""``kb index`` handed to the running service: built there, served at once, gaps re-checked."""

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb.config import Settings
from kb.gaps import GapLog
from kb.index import build_index, current_version
from kb.resident import SOCKET, hand_over
from service.app import create_app


def wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def service(tmp_path, kb_copy, real_embedder, monkeypatch):
    """The fixture knowledge base indexed and served; commands run from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KB_GAP_DB", "gaps.sqlite3")
    build_index(Path("articles"), tmp_path / "index", lambda: real_embedder, real_embedder.name)
    settings = Settings(articles=Path("articles"), index=tmp_path / "index",
                        gap_db=tmp_path / "gaps.sqlite3")
    with TestClient(create_app(settings, real_embedder)) as client:
        yield client


def top(client, query):
    body = client.post("/search", json={"query": query, "k": 1}).json()
    return body["results"][0]["id"] if body["answered"] else None


def test_a_build_handed_to_the_service_is_served_at_once(service, kb_copy, tmp_path, capsys):
    version = service.get("/healthz").json()["index_version"]
    assert top(service, "how do I book a meeting room") is None  # a gap
    (kb_copy / "meeting-rooms.md").write_text(
        "---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n"
        "---\n# How to book a meeting room\n\nOpen the Rooms calendar in Outlook, pick a "
        "free room and send the invitation to it.\n")

    assert hand_over(["index", "--articles", "articles"]) == 0
    out = capsys.readouterr().out
    assert "(1 added, 0 changed, 0 removed)" in out and "re-checks open gap queries" in out
    now = service.get("/healthz").json()["index_version"]
    assert now != version and now == current_version(tmp_path / "index")  # no reload needed
    assert top(service, "how do I book a meeting room") == "meeting-rooms"
    hit = service.post("/search", json={"query": "meeting room"}).json()["results"][0]
    assert hit["path"] == "articles/meeting-rooms.md"  # as the command names it
    # The gap is closed in the background, after the command has returned.
    log = GapLog(tmp_path / "gaps.sqlite3")
    wait_for(lambda: not log.open_gap_texts())
    closed = service.get("/gaps", params={"include_resolved": "true"}).json()["topics"]
    assert [(t["status"], t["resolved_by"]) for t in closed] == [("resolved", "meeting-rooms")]

    assert hand_over(["index", "--articles", "articles"]) == 0
    assert capsys.readouterr().out.startswith("unchanged, nothing published")


def test_a_build_stops_the_gap_recheck_of_the_build_before_it(service, monkeypatch):
    import service.indexing as indexing

    assert top(service, "how do I book a meeting room") is None  # a gap to re-check
    events: list[str] = []

    def recheck(log, searcher, stop):  # type: ignore[no-untyped-def]
        events.append("re-check")
        while not stop():
            time.sleep(0.005)
        events.append("re-check stopped")
        return []

    def index_articles(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("build")
        return real_index(*args, **kwargs)

    real_index = indexing.index_articles
    monkeypatch.setattr(indexing, "recheck_gaps", recheck)
    monkeypatch.setattr(indexing, "index_articles", index_articles)
    (Path("articles") / "wifi-8021x.md").write_text("---\nid: wifi-8021x\ntitle: Wi-Fi\n"
                                                   "type: faq\n---\nEdited.\n")
    assert hand_over(["index", "--articles", "articles"]) == 0
    wait_for(lambda: "re-check" in events)
    assert hand_over(["index", "--articles", "articles"]) == 0  # unchanged: no re-check of its own
    # Not a build beside the re-check: they would share the cores and the GIL.
    assert events == ["build", "re-check", "re-check stopped", "build"]


def test_invalid_articles_fail_the_command_and_the_service_keeps_its_version(
        service, kb_copy, capsys):
    version = service.get("/healthz").json()["index_version"]
    (kb_copy / "broken.md").write_text("---\nid: broken\ntitle: Broken\ntype: blog\n---\nx\n")
    assert hand_over(["index", "--articles", "articles"]) == 2
    err = capsys.readouterr().err
    assert "articles/broken.md:4: unknown type 'blog'" in err and "nothing was published" in err
    assert service.get("/healthz").json()["index_version"] == version
    assert top(service, "VPN error 809") == "vpn-error-809"


def test_what_the_service_cannot_build_is_built_by_the_command(service, capsys, monkeypatch):
    assert hand_over(["index", "--model", "another-model"]) is None
    assert "runs model 'all-MiniLM-L6-v2', not 'another-model'" in capsys.readouterr().err
    monkeypatch.setenv("KB_BATCH_SIZE", "lots")
    assert hand_over(["index", "--articles", "articles"]) == 2
    assert "KB_BATCH_SIZE='lots'" in capsys.readouterr().err


def test_a_service_started_without_an_index_serves_the_first_build(
        tmp_path, kb_copy, real_embedder, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    settings = Settings(articles=kb_copy, index=tmp_path / "index",
                        gap_db=tmp_path / "gaps.sqlite3")
    with TestClient(create_app(settings, real_embedder)) as client:
        assert client.get("/readyz").status_code == 503
        assert hand_over(["index", "--articles", "articles", "--index", "index"]) == 0
        assert "8 added" in capsys.readouterr().out
        assert top(client, "VPN error 809") == "vpn-error-809"


def test_a_version_published_by_another_process_is_served_by_itself(
        tmp_path, kb_copy, real_embedder, fake_embedder, caplog):
    index = tmp_path / "index"
    build_index(kb_copy, index, lambda: real_embedder, real_embedder.name)
    settings = Settings(articles=kb_copy, index=index, gap_db=tmp_path / "gaps.sqlite3",
                        reload_interval=0.05, accept_builds=False)
    with TestClient(create_app(settings, real_embedder)) as client:
        assert not (index / SOCKET).exists()  # builds are not taken here
        (kb_copy / "meeting-rooms.md").write_text(
            "---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n"
            "---\n# How to book a meeting room\n\nOpen the Rooms calendar in Outlook.\n")
        build_index(kb_copy, index, lambda: real_embedder, real_embedder.name)  # kb index --local
        published = current_version(index)
        wait_for(lambda: client.get("/healthz").json()["index_version"] == published)
        assert top(client, "how do I book a meeting room") == "meeting-rooms"

        # A version the service cannot serve (another model) is refused, once, and the one
        # it serves stays.
        build_index(kb_copy, index, lambda: fake_embedder, fake_embedder.name)
        wait_for(lambda: "not serving" in caplog.text)
        time.sleep(0.2)
        assert caplog.text.count("not serving") == 1
        assert client.get("/healthz").json()["index_version"] == published
        assert top(client, "how do I book a meeting room") == "meeting-rooms"


def test_a_malformed_request_is_answered_with_an_error(service, tmp_path):
    import json
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(tmp_path / "index" / SOCKET))
        sock.sendall(b'{"flags": {}}\n')
        replies = [json.loads(line) for line in sock.makefile("r", encoding="utf-8")]
    assert replies == [{"err": "error: malformed request from 'kb index'"}, {"exit": 2}]
    assert top(service, "VPN error 809") == "vpn-error-809"
