"""Edit an article, ``kb index`` in its own process, reload: the new text is found, the removed
text is gone, and an invalid edit leaves the old index serving. (The service building what
``kb index`` hands it, and following what others publish: test_indexing.)"""

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.config import Settings
from service.app import create_app


def test_edit_index_reload(tmp_path, kb_copy, real_embedder, monkeypatch):
    index = tmp_path / "index"
    monkeypatch.setenv("KB_ARTICLES", str(kb_copy))
    monkeypatch.setenv("KB_INDEX", str(index))
    monkeypatch.setenv("KB_GAP_DB", str(tmp_path / "gaps.sqlite3"))
    monkeypatch.setenv("KB_RELOAD_INTERVAL", "0")  # reloaded by hand here
    runner = CliRunner()
    first = runner.invoke(cli, ["index"])
    assert first.exit_code == 0, first.output
    assert "published" in first.output and "8 articles" in first.output

    settings = Settings()
    with TestClient(create_app(settings, real_embedder)) as client:
        def top(query):
            body = client.post("/search", json={"query": query, "k": 1}).json()
            return body["results"][0]["id"] if body["answered"] else None

        assert top("VPN error 809") == "vpn-error-809"
        version = client.get("/healthz").json()["index_version"]
        # An agent asks what the knowledge base cannot answer yet: a gap.
        assert top("how do I book a meeting room") is None
        assert [t["status"] for t in client.get("/gaps").json()["topics"]] == ["open"]

        # A writer replaces the VPN article's cause and adds a new article.
        path = kb_copy / "vpn-error-809.md"
        path.write_text(path.read_text().replace(
            "The router in front of the laptop blocks the IPsec ports UDP 500 and 4500 or does "
            "not pass NAT traversal.",
            "The Zephyrion gateway certificate expired on the concentrator."))
        (kb_copy / "meeting-rooms.md").write_text(
            "---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n"
            "---\n# How to book a meeting room\n\nOpen the Rooms calendar in Outlook, pick a "
            "free room and send the invitation to it.\n")
        second = runner.invoke(cli, ["index"])
        assert second.exit_code == 0, second.output
        assert "1 added, 1 changed" in second.output
        # The rebuild searched the open gap again: the new article closes it.
        assert "resolved by meeting-rooms: how do I book a meeting room" in second.output
        assert client.get("/gaps").json()["topics"] == []
        closed = client.get("/gaps", params={"include_resolved": "true"}).json()["topics"]
        assert [(t["status"], t["resolved_by"]) for t in closed] == [("resolved", "meeting-rooms")]

        # Not served until reloaded: the old version answers.
        assert client.get("/healthz").json()["index_version"] == version
        reloaded = client.post("/admin/reload").json()
        assert reloaded["previous"] == version and reloaded["index_version"] != version
        assert top("Zephyrion certificate expired") == "vpn-error-809"
        assert top("how do I book a meeting room") == "meeting-rooms"
        hits = client.post("/search", json={"query": "NAT traversal UDP 4500", "k": 10}).json()
        assert all("NAT traversal" not in r["snippet"] for r in hits["results"])

        # An invalid edit: kb index fails listing the problem; the served index is untouched.
        (kb_copy / "broken.md").write_text("---\nid: broken\ntitle: Broken\ntype: blog\n---\nx\n")
        third = runner.invoke(cli, ["index"])
        assert third.exit_code == 2
        assert f"{kb_copy / 'broken.md'}:4: unknown type 'blog'" in third.output
        current = client.get("/healthz").json()["index_version"]
        assert client.post("/admin/reload").json()["index_version"] == current
        assert top("Zephyrion certificate expired") == "vpn-error-809"
