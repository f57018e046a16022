"""Two ``kb serve`` replicas on one PostgreSQL database and one index folder, under load from
four clients that alternate between them; and a replica stopped with SIGTERM mid-load."""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from kb.build import build_index
from kb.storage.sql import engine_url
from kb.store import current_version
from tests.serving import Served

pytestmark = pytest.mark.slow

LOAD_SECONDS = 30.0
FOLLOW = 1.0  # KB_RELOAD_INTERVAL of the replicas
QUERIES = ["VPN error 809", "打印机离线怎么办", "forgot my password", "outlook 0x800ccc0e",
           "wifi 802.1x certificate", "退款多久到账", "how do I book a meeting room",
           "会议室怎么预订", "expense report deadline", "公司班车时间表"]
ROOMS = ("---\nid: meeting-rooms\ntitle: How to book a meeting room\ntype: faq\nlang: en\n---\n"
         "# How to book a meeting room\n\nOpen the Rooms calendar in Outlook, pick a free room "
         "and send the invitation to it.\n")


def drained(code: int, served: Served) -> bool:
    """Stopped by SIGTERM after a complete shutdown (uvicorn re-raises the signal it caught,
    so the exit status says SIGTERM, as a process manager expects)."""
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in served.output()


def stored_ids(url: str) -> list[str]:
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT id FROM queries"))]
    finally:
        engine.dispose()


class Clients:
    """Four clients searching on one replica and giving feedback on the other."""

    def __init__(self, replicas: list[Served], seconds: float) -> None:
        self.replicas = replicas
        self.until = time.monotonic() + seconds
        self.ids: list[str] = []
        self.votes: set[tuple[str, str]] = set()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(4)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def _run(self, n: int) -> None:
        sessions = [httpx.Client(base_url=r.url, timeout=30) for r in self.replicas]
        for i in itertools.count():
            if time.monotonic() > self.until:
                break
            here, there = sessions[(n + i) % 2], sessions[(n + i + 1) % 2]
            query = QUERIES[(n * 7 + i) % len(QUERIES)]
            r = here.post("/search", json={"query": query, "k": 5})
            if r.status_code != 200:
                with self._lock:
                    self.failures.append(f"search {r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            with self._lock:
                self.ids.append(body["query_id"])
            if not body["results"]:
                continue
            article = body["results"][i % len(body["results"])]["id"]
            f = there.post("/feedback", json={"query_id": body["query_id"],
                                              "article_id": article, "helpful": i % 3 != 0})
            with self._lock:
                if f.status_code == 200:
                    self.votes.add((body["query_id"], article))
                else:
                    self.failures.append(f"feedback {f.status_code} {f.text[:200]}")
        for s in sessions:
            s.close()


def test_two_replicas_share_one_database_and_one_index(tmp_path, postgres_url, kb_copy,
                                                       fixture_index, real_embedder):
    index = tmp_path / "index"
    shutil.copytree(fixture_index, index)
    env = {"KB_DATABASE_URL": postgres_url, "KB_INDEX": str(index), "KB_ARTICLES": str(kb_copy),
           "KB_RELOAD_INTERVAL": str(FOLLOW)}
    replicas = [Served(env, tmp_path / f"replica{n}.log") for n in range(2)]
    try:
        for r in replicas:
            r.wait_ready()
        clients = Clients(replicas, LOAD_SECONDS)
        clients.start()

        # A third of the way in, a writer publishes a version with a new article.
        time.sleep(LOAD_SECONDS / 3)
        (kb_copy / "meeting-rooms.md").write_text(ROOMS, encoding="utf-8")
        build_index(kb_copy, index, lambda: real_embedder, real_embedder.name)
        published, at = current_version(index), time.monotonic()
        lags = {}
        while len(lags) < 2 and time.monotonic() - at < 30:
            for n, r in enumerate(replicas):
                if n not in lags and httpx.get(r.url + "/healthz", timeout=30).json()[
                        "index_version"] == published:
                    lags[n] = time.monotonic() - at
            time.sleep(0.05)
        assert len(lags) == 2, f"not both replicas serve {published}: {lags}"
        # Within the follow interval, plus the time a loaded machine takes to open a version.
        assert max(lags.values()) < FOLLOW + 10, lags
        for r in replicas:
            hit = httpx.post(r.url + "/search", json={"query": "book a meeting room", "k": 1},
                             timeout=30)
            assert hit.json()["results"][0]["id"] == "meeting-rooms"
        clients.join()

        assert clients.failures == []
        assert len(clients.ids) > 20 and len(clients.votes) > 10
        # Every query answered is stored once, whichever replica served it.
        deadline = time.monotonic() + 20
        while len(stored_ids(postgres_url)) < len(clients.ids) + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = stored_ids(postgres_url)
        assert len(stored) == len(set(stored)) == len(clients.ids) + 2  # + the two checks above
        assert set(clients.ids) <= set(stored)
        print(f"\nreplicas: {len(clients.ids)} searches, {len(clients.votes)} votes across "
              f"replicas in {LOAD_SECONDS:.0f} s; new version served after "
              f"{', '.join(f'{v:.2f} s' for v in lags.values())}")
        # And the gap report and the feedback counts are the same from either.
        reports = [httpx.get(r.url + "/gaps", params={"include_resolved": "true"},
                             timeout=120).json()
                   for r in replicas]
        assert reports[0]["topics"] and reports[0] == reports[1]
        stats = [httpx.get(r.url + "/articles/vpn-error-809/stats", timeout=30).json()
                 for r in replicas]
        assert stats[0] == stats[1]
    finally:
        codes = [r.terminate() for r in replicas]
    for code, r in zip(codes, replicas, strict=True):
        assert drained(code, r), r.output()


def test_sigterm_drains_requests_and_stores_every_queued_query(tmp_path, index_copy):
    """SIGTERM to ``kb serve --workers 2`` while 8 clients search and the database is locked
    (so their queries are queued in memory): every request the service took on is answered,
    and every query answered is in the database once the processes have exited."""
    db = tmp_path / "gaps.sqlite3"
    # A short wait for the lock: the writer gives up on it while the test holds it, whatever
    # the machine's speed.
    served = Served({"KB_INDEX": str(index_copy), "KB_GAP_DB": str(db), "KB_DB_TIMEOUT": "0.2"},
                    tmp_path / "serve.log",
                    "--workers", "2")
    answered: list[str] = []
    dropped: list[str] = []
    stop = threading.Event()

    def client() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            try:  # a connection per request: once it stops listening, connecting fails
                r = httpx.post(served.url + "/search", headers={"Connection": "close"},
                               json={"query": QUERIES[i % len(QUERIES)]}, timeout=60)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # Refused, reset, or closed before the request was read: a connection the
                # service had not taken a request from when it stopped listening (a load
                # balancer retries those). Requests it did take on are checked below.
                return
            except httpx.HTTPError as exc:
                dropped.append(repr(exc))
                return
            if r.status_code != 200:
                dropped.append(f"{r.status_code} {r.text[:200]}")
            else:
                answered.append(r.json()["query_id"])

    try:
        served.wait_ready()
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the writer cannot store: queries pile up
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answered) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        served.proc.send_signal(signal.SIGTERM)  # mid-load
        time.sleep(1.0)
        lock.execute("ROLLBACK")
        lock.close()
        code = served.terminate()
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        served.terminate()
    assert drained(code, served), served.output()
    assert dropped == []
    assert len(answered) >= 40
    # Every search the service took on was answered to its client, and stored.
    log = served.output(full=True)
    assert "queries wait in memory" in log  # the lock held them back: they were queued
    assert log.count("Application shutdown complete") == 2  # both workers drained
    # An access line, as text or as a JSON log line's message (quotes escaped).
    handled = len(re.findall(r'POST /search HTTP/1\.1\\?" 200', log))
    assert handled == len(answered)
    stored = {r[0] for r in sqlite3.connect(db).execute("SELECT id FROM queries")}
    assert stored == set(answered), f"{len(set(answered) - stored)} answered queries not stored"
    print(f"\nSIGTERM: {len(answered)} searches answered, all {len(stored)} stored; "
          f"{sum(1 for line in log.splitlines() if 'answers again' in line)} workers stored "
          "their waiting queries at shutdown")
    assert Path(db).stat().st_mode & 0o077 == 0
