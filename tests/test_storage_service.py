"""The store as the service uses it: retention on start and on schedule, a locked database
answered 503 promptly while searches go on, and private database files."""

from __future__ import annotations

import sqlite3
import threading

from fastapi.testclient import TestClient

import kb.storage.sql as sql
from kb.storage import SqlStore, open_store
from kb.storage.retention import Retention
from service.app import create_app


def old_query(store, monkeypatch, text="an old question 13800138000"):
    monkeypatch.setattr(sql, "now", lambda: "2025-01-01T00:00:00+00:00")
    qid = store.record(channel="search", query=text, lang="en", filters={}, answered=False,
                       confidence=0.1, neighbours=[], top_score=None, vector=None,
                       index_version="v0")
    store.flush()
    monkeypatch.undo()
    return qid


def test_retention_runs_at_once_and_then_on_schedule(tmp_path, monkeypatch):
    store = SqlStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    old_query(store, monkeypatch)
    runs = threading.Semaphore(0)
    purge = store.purge
    monkeypatch.setattr(store, "purge", lambda days: (purge(days), runs.release())[0])
    retention = Retention(lambda: store, days=30, interval=0.05)
    retention.start()
    assert runs.acquire(timeout=10) and runs.acquire(timeout=10)  # at start, and again
    retention.close()
    assert store.unanswered() == [] and store.count() == 1
    store.close()


def test_retention_zero_keeps_everything(tmp_path, monkeypatch):
    store = SqlStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    old_query(store, monkeypatch)
    retention = Retention(lambda: store, days=0)
    retention.start()
    retention.close()
    assert len(store.unanswered()) == 1
    store.close()


def test_the_service_purges_old_query_text_when_it_starts(settings, real_embedder, monkeypatch):
    store = open_store(settings)
    old_query(store, monkeypatch)
    store.close()
    with TestClient(create_app(settings, real_embedder)) as client:
        assert client.get("/readyz").status_code == 200
        client.app.state.store.flush()
        for _ in range(100):
            if not open_store(settings).unanswered():
                break
            threading.Event().wait(0.05)
        assert open_store(settings).unanswered() == []


def test_a_locked_database_is_503_at_once_and_searches_go_on(settings, real_embedder):
    settings = settings.model_copy(update={"db_timeout": 0.3})
    with TestClient(create_app(settings, real_embedder)) as client:
        qid = client.post("/search", json={"query": "vpn 809"}).json()["query_id"]
        client.app.state.store.flush()
        lock = sqlite3.connect(settings.gap_path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            r = client.post("/feedback", json={"query_id": qid, "article_id": "vpn-error-809",
                                               "helpful": True})
            assert r.status_code == 503 and r.json()["error"]["code"] == "storage_busy"
            during = [client.post("/search", json={"query": q}) for q in ("打印机", "wifi")]
            assert [s.status_code for s in during] == [200, 200]
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert client.post("/feedback", json={"query_id": qid, "article_id": "vpn-error-809",
                                              "helpful": True}).status_code == 200
        ids = [s.json()["query_id"] for s in during]
        assert all(client.app.state.store.query(i) is not None for i in ids)


def test_database_files_are_private(tmp_path):
    path = tmp_path / "g.sqlite3"
    store = SqlStore(f"sqlite:///{path}")
    store.record(channel="search", query="x", lang="en", filters={}, answered=True,
                 confidence=1.0, neighbours=[], top_score=None, vector=None, index_version="v")
    store.flush()
    for name in ("g.sqlite3", "g.sqlite3-wal", "g.sqlite3-shm"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name
    store.close()
