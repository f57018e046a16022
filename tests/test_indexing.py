"""The service follows what ``kb index`` publishes: serves each new version by itself, survives
versions it cannot load, and re-checks its open gap queries against each new version."""

import logging
import shutil
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

import kb.store
from kb.build import build_index
from kb.config import Settings
from kb.engine import recheck_gaps
from kb.errors import ArticleError
from kb.store import current_version, is_served
from service.app import create_app

MEETING = ("---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n"
           "---\n# How to book a meeting room\n\nOpen the Rooms calendar in Outlook.\n")


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def publish(kb_copy, index, embedder, name="extra", text="Text"):
    (kb_copy / f"{name}.md").write_text(f"---\nid: {name}\ntitle: {name}\ntype: faq\n---\n{text}\n")
    build_index(kb_copy, index, lambda: embedder, embedder.name)
    return current_version(index)


@pytest.fixture
def served(tmp_path, kb_copy, fake_embedder):
    """The fixture knowledge base, indexed with the fake embedder and served, following
    CURRENT every 20 ms."""
    index = tmp_path / "index"
    build_index(kb_copy, index, lambda: fake_embedder, fake_embedder.name)
    settings = Settings(articles=kb_copy, index=index, gap_db=tmp_path / "gaps.sqlite3",
                        reload_interval=0.02)
    with TestClient(create_app(settings, fake_embedder)) as client:
        yield client


def version(client):
    return client.get("/healthz").json()["index_version"]


def test_a_version_kb_index_publishes_is_served_by_itself(served, kb_copy, tmp_path,
                                                          fake_embedder):
    index = tmp_path / "index"
    assert is_served(index)  # so kb index leaves the gap re-check to the service
    published = publish(kb_copy, index, fake_embedder, "zebracorn", "Zebracorn stripes.")
    wait_for(lambda: version(served) == published)
    hits = served.post("/search", json={"query": "zebracorn stripes", "k": 1}).json()["results"]
    assert hits[0]["id"] == "zebracorn"


def test_the_follower_survives_a_version_pruned_while_it_loads(served, kb_copy, tmp_path,
                                                               fake_embedder, monkeypatch,
                                                               caplog):
    index = tmp_path / "index"
    before = version(served)
    real = kb.store.read_vectors
    doomed: list[str] = []

    def pruned_meanwhile(path):
        if path.name in doomed:
            shutil.rmtree(path)  # as `kb index` pruning it, or someone removing it by hand
        return real(path)

    monkeypatch.setattr(kb.store, "read_vectors", pruned_meanwhile)
    caplog.set_level(logging.INFO, logger="kb.service")
    with kb.store.build_lock(index):  # the follower sees CURRENT only once it names the version
        doomed.append(kb.store.new_staging(index)[1])
    staging = next((index / "versions").glob(".staging-*"))
    shutil.copytree(index / "versions" / before, staging, dirs_exist_ok=True)
    kb.store.publish(index, staging, doomed[0])
    wait_for(lambda: "not serving index version " + doomed[0] in caplog.text)
    assert version(served) == before  # the old version goes on being served
    assert served.post("/search", json={"query": "vpn 809"}).status_code == 200
    # The next version is tried afresh, and served.
    published = publish(kb_copy, index, fake_embedder)
    wait_for(lambda: version(served) == published)


def test_the_follower_survives_any_error_while_loading(served, kb_copy, tmp_path, fake_embedder,
                                                       monkeypatch, caplog):
    index = tmp_path / "index"
    before = version(served)
    failing = threading.Event()
    failing.set()
    real = kb.store.LexicalIndex.load

    def broken(directory):
        if failing.is_set():
            raise RuntimeError("something nobody expected")
        return real(directory)

    monkeypatch.setattr(kb.store.LexicalIndex, "load", staticmethod(broken))
    first = publish(kb_copy, index, fake_embedder, "one")
    wait_for(lambda: f"not serving index version {first}" in caplog.text)
    assert "RuntimeError: something nobody expected" in caplog.text
    time.sleep(0.1)  # looked at again and again: refused once, not retried every look
    assert caplog.text.count(f"not serving index version {first}") == 1
    assert version(served) == before
    failing.clear()
    second = publish(kb_copy, index, fake_embedder, "two")
    wait_for(lambda: version(served) == second)


def test_a_version_of_another_model_is_refused_and_the_served_one_stays(
        served, kb_copy, tmp_path, fake_embedder, caplog):
    index = tmp_path / "index"
    before = version(served)
    other = type(fake_embedder)()
    other.name = "fake-2"
    publish(kb_copy, index, other)
    wait_for(lambda: "built with model 'fake-2'" in caplog.text)
    assert version(served) == before


def test_a_service_started_without_an_index_serves_the_first_build(tmp_path, kb_copy,
                                                                   fake_embedder):
    settings = Settings(articles=kb_copy, index=tmp_path / "index",
                        gap_db=tmp_path / "gaps.sqlite3", reload_interval=0.02)
    with TestClient(create_app(settings, fake_embedder)) as client:
        assert client.get("/readyz").status_code == 503
        build_index(kb_copy, tmp_path / "index", lambda: fake_embedder, fake_embedder.name)
        wait_for(lambda: client.get("/readyz").status_code == 200)
    assert not is_served(tmp_path / "index")  # let go when the service stops


def test_each_new_version_is_rechecked_in_the_service_through_its_own_engine(
        served, kb_copy, tmp_path, fake_embedder, monkeypatch):
    import service.indexing

    calls = []
    engine = served.app.state.engine

    def recheck(log, searcher_for, audience, stop):
        calls.append((log, searcher_for("public"), searcher_for("internal"), audience))
        return []

    monkeypatch.setattr(service.indexing, "recheck_gaps", recheck)
    published = publish(kb_copy, tmp_path / "index", fake_embedder)
    wait_for(lambda: calls)
    log, public, internal, audience = calls[0]
    assert log is engine.log  # the service's own database
    assert audience == "internal"  # the service's configured audience (KB_PUBLIC_ONLY unset)
    assert public.version == internal.version == published
    # One searcher answers both: each search names its caller's audience (kb.audience).
    assert public is internal is engine.searcher
    # Through the batching embedder live queries share (one model pass at a time).
    assert public.embedder is internal.embedder is engine.embedder


def test_a_newer_version_stops_the_recheck_under_way(served, kb_copy, tmp_path, fake_embedder,
                                                     monkeypatch):
    import service.indexing

    events: list[str] = []

    def recheck(log, searcher_for, audience, stop):
        events.append("re-check")
        while not stop():
            time.sleep(0.005)
        events.append("stopped")
        return []

    monkeypatch.setattr(service.indexing, "recheck_gaps", recheck)
    publish(kb_copy, tmp_path / "index", fake_embedder, "one")
    wait_for(lambda: events == ["re-check"])
    second = publish(kb_copy, tmp_path / "index", fake_embedder, "two")
    wait_for(lambda: events == ["re-check", "stopped", "re-check"])
    assert version(served) == second


class _Log:
    def __init__(self, texts, audience=None):
        self.texts = [(t, audience) for t in texts]
        self.resolved = []

    def open_gaps(self):
        return self.texts

    def resolve(self, text, article, audience=None):
        self.resolved.append((text, article))


class _Searcher:
    """Answers what its audience may see: public searchers never see the internal article."""

    def __init__(self, audience, seen):
        self.audience, self.seen = audience, seen

    def search(self, text, k=1, audience="internal"):
        assert audience == self.audience  # made for the audience it is asked for
        self.seen.append((text, audience))
        hits = [SimpleNamespace(id="internal-sop")] if audience == "internal" else []
        return SimpleNamespace(answered=bool(hits), hits=hits)


def test_the_recheck_searches_each_query_as_its_audience():
    seen: list = []
    made: list[str] = []

    def searcher_for(audience):
        made.append(audience)
        return _Searcher(audience, seen)

    log = _Log(["how do I escalate"])
    assert recheck_gaps(log, searcher_for, "public") == []  # the public channel: no answer
    assert log.resolved == [] and seen == [("how do I escalate", "public")]
    assert recheck_gaps(log, searcher_for, "internal") == [("how do I escalate", "internal-sop")]
    assert log.resolved == [("how do I escalate", "internal-sop")]
    log = _Log(["a", "b", "c"])
    recheck_gaps(log, searcher_for, "public")
    assert made.count("public") == 2  # one searcher per audience and re-check, not per query


def test_engine_index_status_shows_the_served_version_and_the_last_build(
        served, kb_copy, tmp_path, fake_embedder):
    engine = served.app.state.engine
    status = engine.index_status()
    assert status.version == version(served) and status.model == "fake"
    assert status.articles == len(engine.searcher.index.articles)
    assert status.chunks == len(engine.searcher.index.chunks) and status.built
    assert status.last_build["ok"] and status.problems == []
    (kb_copy / "broken.md").write_text("---\nid: broken\ntitle: Broken\ntype: blog\n---\nx\n")
    with pytest.raises(ArticleError):
        build_index(kb_copy, tmp_path / "index", lambda: fake_embedder, fake_embedder.name)
    status = engine.index_status()
    assert status.version == version(served)  # still the version before
    assert not status.last_build["ok"]
    (problem,) = status.problems
    assert problem.startswith(f"{kb_copy / 'broken.md'}:4: unknown type 'blog'")
    # A date YAML reads but the calendar has not was a bare "month must be in 1..12".
    (kb_copy / "broken.md").write_text("---\nid: broken\ntitle: Broken\ntype: faq\n"
                                       "updated: 2026-13-45\n---\nx\n")
    with pytest.raises(ArticleError):
        build_index(kb_copy, tmp_path / "index", lambda: fake_embedder, fake_embedder.name)
    assert engine.index_status().problems == [
        f"{kb_copy / 'broken.md'}:5: updated: 2026-13-45 is not a date (YYYY-MM-DD)"]
