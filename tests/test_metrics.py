"""GET /metrics: what is counted, under which names and labels, and across worker processes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi import HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.metrics import UNMATCHED, Metrics, metrics_access, multiprocess_dir

ROOT = Path(__file__).parent.parent


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_searches_feedback_and_the_index_are_exposed(client):
    secret = "13812345678"
    answered = client.post("/search", json={"query": "VPN 809 错误"}).json()
    client.post("/search", json={"query": f"qwxz zzkv {secret} jjqp"})
    client.get("/search", params={"q": f"mail a@b.com {secret}"})
    assert client.post("/suggest", json={"ticket_id": "T-1", "subject": "Outlook 0x800CCC0E",
                                         "description": "error"}).status_code == 200
    top = answered["results"][0]["id"]
    assert client.post("/feedback", json={"query_id": answered["query_id"], "article_id": top,
                                          "helpful": False}).status_code == 200
    client.get(f"/articles/{secret}/stats")
    client.get(f"/no/such/path/{secret}")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    # No query, path as sent, or personal data anywhere, labels included.
    for leaked in (secret, "a@b.com", "VPN", "qwxz", "Outlook", "/no/such"):
        assert leaked not in text
    found = samples(text)
    assert value(found, "kb_http_requests_total", method="POST", route="/search",
                 status="200") == 2
    assert value(found, "kb_http_requests_total", method="GET", route="/search",
                 status="200") == 1
    assert value(found, "kb_http_requests_total", method="GET", route=UNMATCHED,
                 status="404") == 1
    assert value(found, "kb_http_requests_total", method="GET",
                 route="/articles/{article_id}/stats", status="404") == 1
    assert value(found, "kb_http_request_duration_seconds_count", method="POST",
                 route="/search") == 2
    searched = {a: value(found, "kb_searches_total", channel="search", answered=a)
                for a in ("true", "false")}
    assert sum(searched.values()) == 3 and searched["true"] >= 1 and searched["false"] >= 1
    assert value(found, "kb_gaps_logged_total", channel="search") == searched["false"]
    assert sum(value(found, "kb_searches_total", channel="suggest", answered=a)
               for a in ("true", "false")) == 1
    assert value(found, "kb_feedback_total", helpful="false") == 1
    version = client.get("/healthz").json()["index_version"]
    assert value(found, "kb_index_info", version=version) == 1
    assert value(found, "kb_index_age_seconds") >= 0
    assert value(found, "kb_index_chunks") == client.get("/healthz").json()["chunks"]
    # Each query encoded alone or batched with others.
    assert sum(value(found, "kb_model_encode_seconds_count", texts=n) for n in ("1", "2-32")) >= 1
    assert value(found, "kb_model_encoded_texts_total") >= 4
    for gauge in ("kb_embed_queue_depth", "kb_query_log_queue_depth"):
        assert (gauge, ()) in found


def test_metrics_can_be_turned_off_or_put_behind_a_check(settings, real_embedder):
    off = settings.model_copy(update={"metrics": False})
    with TestClient(create_app(off, real_embedder)) as c:
        assert c.get("/metrics").status_code == 404
    app = create_app(settings, real_embedder)

    def admins_only() -> None:
        raise HTTPException(403, "admins only")

    app.dependency_overrides[metrics_access] = admins_only
    with TestClient(app) as c:
        r = c.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["message"] == "admins only"


def test_the_last_build_comes_from_its_recorded_outcome(tmp_path):
    from kb import store

    metrics = Metrics()
    store.write_status(tmp_path, {"ok": True, "time": "2026-12-02T15:00:00+00:00",
                                  "seconds": 12.5, "problems": [], "embedded": 40})
    metrics.sample(None, tmp_path)
    found = samples(metrics.exposition()[0].decode())
    assert value(found, "kb_index_last_build_success") == 1
    assert value(found, "kb_index_last_build_duration_seconds") == 12.5
    assert value(found, "kb_index_last_build_embedded_chunks") == 40
    assert value(found, "kb_index_last_build_timestamp_seconds") == 1_796_223_600
    store.write_status(tmp_path, {"ok": False, "time": "2026-12-02T15:05:00+00:00",
                                  "seconds": 0.4, "problems": ["a.md:3: unknown type"]})
    metrics.sample(None, tmp_path)
    assert value(samples(metrics.exposition()[0].decode()), "kb_index_last_build_success") == 0


WORKER = textwrap.dedent("""
    import sys
    from service.metrics import Metrics
    m = Metrics()
    assert m.multiprocess
    for _ in range(int(sys.argv[1])):
        m.request("POST", "/search", 200, 0.004)
    m.feedback_given(True)
    m.embed_queue.set(int(sys.argv[1]))
    if sys.argv[2] == "print":
        sys.stdout.write(m.exposition()[0].decode())
""")


def test_worker_processes_add_up(tmp_path, monkeypatch):
    """Each process (as each ``kb serve --workers`` worker) writes its own files; a scrape
    answered by any one of them adds up all of them."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with multiprocess_dir() as folder:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == folder and os.path.isdir(folder)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        run = [sys.executable, "-c", WORKER]
        subprocess.run([*run, "3", "-"], env=env, check=True)
        out = subprocess.run([*run, "2", "print"], env=env, check=True, capture_output=True,
                             text=True).stdout
    assert not os.path.exists(folder) and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    found = samples(out)
    assert value(found, "kb_http_requests_total", method="POST", route="/search",
                 status="200") == 5
    assert value(found, "kb_http_request_duration_seconds_count", method="POST",
                 route="/search") == 5
    assert value(found, "kb_feedback_total", helpful="true") == 2
    # Queue depths add up over the processes still alive: the first one has exited, and its
    # files stay, so a sum would count them. livesum leaves dead processes out only when they
    # are marked dead, which a service's shutdown does (Metrics.close).
    assert value(found, "kb_embed_queue_depth") in (2, 5)


def test_an_operators_folder_is_emptied_and_kept(tmp_path, monkeypatch):
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old run")
    (folder / "notes.txt").write_text("mine")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    with multiprocess_dir() as used:
        assert used == str(folder) and sorted(os.listdir(folder)) == ["notes.txt"]
    assert folder.is_dir() and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
