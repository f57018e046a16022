"""A writer's day with the real model: edit articles, ``kb index`` in its own process, and the
running service serves the new version by itself and closes the gaps it answers; an invalid
edit leaves the old version serving; with no service running, ``kb index`` closes gaps itself."""

import dataclasses
import logging
import time

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.config import Settings
from kb.search import Searcher
from kb.store import load_index, publish_calibration
from service.app import create_app

MEETING = ("---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n"
           "---\n# How to book a meeting room\n\nOpen the Rooms calendar in Outlook, pick a "
           "free room and send the invitation to it.\n")
DESK = ("---\nid: standing-desk\ntitle: How to order a standing desk\ntype: faq\nlang: en\n"
        "---\n# How to order a standing desk\n\nFacilities orders standing desks: file a "
        "request in the facilities portal with your desk number.\n")


def wait_for(condition, seconds: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def calibrate_between(index, embedder, answerable, gaps):
    """Publish an answered threshold halfway between the confidence of the gap queries and of
    the answerable ones, so the test holds whatever the default threshold is."""
    searcher = Searcher(load_index(index), embedder)
    low = min(searcher.search(q, k=1).confidence for q in answerable)
    high = max(searcher.search(q, k=1).confidence for q in gaps)
    assert low > high  # the model tells them apart; the threshold only has to sit between
    calibration = dataclasses.replace(searcher.index.calibration,
                                      answer_threshold=(low + high) / 2)
    publish_calibration(index, calibration)


def test_edit_index_serve(tmp_path, kb_copy, real_embedder, monkeypatch):
    # The command's log handler writes to the stream CliRunner gives it, closed afterwards;
    # the service's log lines of this test must not go there.
    monkeypatch.setattr(logging.getLogger("kb"), "handlers", [])
    index = tmp_path / "index"
    monkeypatch.setenv("KB_ARTICLES", str(kb_copy))
    monkeypatch.setenv("KB_INDEX", str(index))
    monkeypatch.setenv("KB_GAP_DB", str(tmp_path / "gaps.sqlite3"))
    monkeypatch.setenv("KB_RELOAD_INTERVAL", "0.05")
    runner = CliRunner()
    first = runner.invoke(cli, ["index"])
    assert first.exit_code == 0, first.output
    assert "published" in first.output and f"{len(list(kb_copy.glob('*.md')))} articles" in first.output
    calibrate_between(index, real_embedder, answerable=["VPN error 809"],
                      gaps=["how do I book a meeting room", "how do I order a standing desk"])

    with TestClient(create_app(Settings(), real_embedder)) as client:
        def top(query):
            body = client.post("/search", json={"query": query, "k": 1}).json()
            return body["results"][0]["id"] if body["answered"] else None

        def served():
            return client.get("/healthz").json()["index_version"]

        assert top("VPN error 809") == "vpn-error-809"
        version = served()
        # An agent asks what the knowledge base cannot answer yet: a gap.
        assert top("how do I book a meeting room") is None
        assert [t["status"] for t in client.get("/gaps").json()["topics"]] == ["open"]

        # A writer replaces the VPN article's cause and adds a new article.
        path = kb_copy / "vpn-error-809.md"
        path.write_text(path.read_text().replace(
            "The router in front of the laptop blocks the IPsec ports UDP 500 and 4500 or does "
            "not pass NAT traversal.",
            "The Zephyrion gateway certificate expired on the concentrator."))
        (kb_copy / "meeting-rooms.md").write_text(MEETING)
        second = runner.invoke(cli, ["index"])
        assert second.exit_code == 0, second.output
        assert "1 added, 1 changed" in second.output
        assert "the service serving this index re-checks" in second.output
        # Served by itself, no reload asked for.
        wait_for(lambda: served() != version, what="the new version to be served")
        assert top("Zephyrion certificate expired") == "vpn-error-809"
        assert top("how do I book a meeting room") == "meeting-rooms"
        # The service searched the open gap again: the new article closes it.
        wait_for(lambda: client.get("/gaps").json()["topics"] == [],
                 what="the service's gap re-check")
        closed = client.get("/gaps", params={"include_resolved": "true"}).json()["topics"]
        assert [(t["status"], t["resolved_by"]) for t in closed] == [("resolved", "meeting-rooms")]
        hits = client.post("/search", json={"query": "NAT traversal UDP 4500", "k": 10}).json()
        assert all("NAT traversal" not in r["snippet"] for r in hits["results"])

        # An invalid edit: kb index fails listing the problem; the served index is untouched.
        (kb_copy / "broken.md").write_text("---\nid: broken\ntitle: Broken\ntype: blog\n---\nx\n")
        third = runner.invoke(cli, ["index"])
        assert third.exit_code == 2
        assert f"{kb_copy / 'broken.md'}:4: unknown type 'blog'" in third.output
        current = served()
        assert client.app.state.engine.index_status().problems
        assert top("Zephyrion certificate expired") == "vpn-error-809"
        (kb_copy / "broken.md").unlink()
        assert top("how do I order a standing desk") is None  # another gap
        client.app.state.engine.log.flush()
        assert served() == current

    # No service: the command re-checks the gap log itself.
    (kb_copy / "standing-desk.md").write_text(DESK)
    fourth = runner.invoke(cli, ["index"])
    assert fourth.exit_code == 0, fourth.output
    assert "resolved by standing-desk: how do I order a standing desk" in fourth.output
