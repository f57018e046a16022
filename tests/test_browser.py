"""The pages in a real browser (Debian's Chromium driven by Playwright) against a real uvicorn
on 127.0.0.1: search → the article at its section → copy the reply → feedback → the writers'
dashboard shows the gap and the counts those actions made. Screenshots of the main states go
to artifacts/screenshots/ (git ignores it) for a person to look at."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import uvicorn
from playwright import sync_api as playwright  # a dev dependency: installed by `make install`

import kb.storage.sql
from kb.config import Settings
from kb.embedding import Embedder
from kb.storage.sql import SqlStore
from service.app import create_app
from tests.conftest import ROOT
from tests.test_web_api import web_kb  # noqa: F401  (the fixture knowledge base, indexed)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "artifacts" / "screenshots"
# Skipped on a developer's machine without them; CI installs both and must run these.
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed")


class Served:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url, self.settings = url, settings


@contextlib.contextmanager
def serving(settings: Settings, embedder: Embedder) -> Iterator[str]:
    """The app on a real uvicorn in a thread, on a free loopback port: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, embedder), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def served(web_kb: Path, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
           real_embedder) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("web-served")
    shutil.copytree(web_kb / "index", root / "index")
    settings = Settings(index=root / "index", articles=web_kb / "articles",
                        gap_db=root / "gaps.sqlite3", reload_interval=0)
    with serving(settings, real_embedder) as url:
        yield Served(url, settings)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A page that fails the test on a script error or on a request leaving this machine."""

    def __init__(self, browser, served: Served, width: int = 1100) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900},
                                           permissions=["clipboard-read", "clipboard-write"])
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.base = served.url

    def _route(self, route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def no_overflow(self) -> None:
        wide = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"{self.page.url} scrolls sideways by {wide}px"

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors
        assert not self.outside, self.outside


@pytest.fixture
def tab(browser, served) -> Iterator[Tab]:
    t = Tab(browser, served)
    yield t
    t.close()


def search(tab: Tab, query: str) -> None:
    page = tab.page
    page.locator("body").press("/")  # the shortcut focuses the box
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Control+A")
    page.keyboard.type(query)
    before = page.locator("#results").get_attribute("data-done") or ""
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#results[data-done]:not([data-done='{before}'])")


def test_agent_to_writer(tab: Tab, served: Served) -> None:
    page = tab.page
    tab.go("/")
    search(tab, "printer toner low but new cartridge")
    assert "q=printer+toner" in page.url
    first = page.locator("#results a.title").first
    assert first.inner_text() == 'Printer shows "toner low" but the cartridge is new'
    tab.shot("search-results")

    # Arrows move between results; Enter opens the one in focus, at the matched section.
    page.locator("#q").press("ArrowDown")
    assert page.evaluate("document.activeElement.textContent") == first.inner_text()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_selector("article.doc")
    url = urlparse(page.url)
    assert url.path == "/a/web-printer-toner" and url.query.startswith("qid=") and url.fragment
    section = page.locator("section.target")
    assert section.get_attribute("data-anchor") == unquote(url.fragment)
    assert section.evaluate("s => { const r = s.getBoundingClientRect();"
                            " return r.top >= -1 && r.top < window.innerHeight; }")
    # Tables, lists and code render; related documents link to the articles they name.
    assert page.locator("article.doc table td", has_text="CF259A").count() == 1
    assert page.locator("article.doc pre code").inner_text().startswith("Menu > Reports")
    page.locator("a[href='/a/vpn-error-809']").wait_for()

    # Copy the reply: its plain text is on the clipboard, and the copy is counted.
    page.locator("section#s-reply-template button.copy").click()
    page.locator("section#s-reply-template button.copy.done").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == (
        "Please remove the cartridge, pull off the orange tab and put it back until it clicks.")
    page.locator("article.doc .fb button[data-fb=yes]").click()
    page.locator("article.doc .fb-note", has_text="recorded").wait_for()
    tab.shot("article")

    # Back to the results, which the URL kept; a thumbs-down there.
    page.go_back()
    page.wait_for_selector("#results a.title")
    assert page.locator("#q").input_value() == "printer toner low but new cartridge"
    card = page.locator("#results .card").nth(1)
    wrong = card.get_attribute("data-id")
    card.locator("button[data-fb=no]").click()
    card.locator(".fb-note", has_text="recorded").wait_for()

    # Nothing answers this one: a demoted list, and the agent reports it as missing.
    search(tab, "how do I book a meeting room for the quarterly planning")
    assert page.locator("#weak .notice").is_visible()
    assert "No confident answer" in page.locator("#status").inner_text()
    page.locator("#weak #report").click()
    page.locator("#weak #report.done").wait_for()
    tab.shot("no-confident-answer")

    # The writers' dashboard shows the gap and what the agent did.
    tab.go("/writers")
    page.locator("tr.topic", has_text="meeting room").wait_for()
    row = page.locator("tr.health[data-id=web-printer-toner]")
    row.wait_for()
    cells = row.locator("td.num").all_inner_texts()
    assert cells == ["1", "1", "1", "1", "0"]  # top 3, opened, copied, helpful, not helpful
    assert page.locator(f"tr.health[data-id='{wrong}'] td.num").all_inner_texts()[-1] == "1"
    assert page.locator("#review", has_text="web-printer-toner").count() == 1
    assert page.locator("#index-version").inner_text() == served_version(tab)
    tab.shot("writers")

    # A writer dismisses one topic and marks the other answered; with closed topics shown,
    # both are there with their decision, and a dismissal can be undone.
    page.locator("tr.topic", has_text="meeting room").locator("button.dismiss").click()
    page.locator("tr.topic", has_text="meeting room").wait_for(state="detached")
    wrong_topic = page.locator("tr.topic").first
    wrong_topic.locator("input").fill("web-printer-toner")
    wrong_topic.locator("button.answer").click()
    page.locator("#gaps .hint", has_text="no gap topics").wait_for()
    page.locator("#closed").check()
    page.locator("#range button[type=submit]").click()
    page.locator("tr.topic .st-answered").wait_for()
    dismissed = page.locator("tr.topic", has_text="meeting room")
    assert dismissed.locator(".st-dismissed").count() == 1
    dismissed.locator("button.reopen").click()
    page.locator("tr.topic", has_text="meeting room").locator(".st-open").wait_for()
    tab.shot("writers-decisions")


def test_dashboard_date_range_shows_that_range(tab: Tab, served: Served,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two askings in October (a ticket and a search, two scripts) and one today: the October
    range counts, splits and dates only October's."""
    log = SqlStore(f"sqlite:///{served.settings.gap_db}")
    for ts, channel, text in [("2026-10-05T09:00:00+00:00", "suggest", "公司班车时间表"),
                              ("2026-10-06T17:30:00+00:00", "search", "公司班車時間表"),
                              (None, "search", "公司班车时间表")]:
        if ts:
            monkeypatch.setattr(kb.storage.sql, "now", lambda ts=ts: ts)
        else:
            monkeypatch.undo()
        log.record(channel=channel, query=text, lang="zh", filters={}, answered=False,
                   confidence=0.1, neighbours=[], top_score=None, vector=None,
                   index_version="v1")
    log.close()
    page = tab.page

    def row() -> dict[str, str]:
        topic = page.locator("tr.topic", has_text="公司班")
        topic.wait_for()
        cells = {c.get_attribute("data-label"): c.inner_text()
                 for c in topic.locator("td").all()}
        return {"count": cells["次数 Count"], "channels": cells["渠道 Channels"],
                "languages": cells["语言 Languages"],
                "seen": topic.locator(".seen").inner_text()}

    tab.go("/writers?since=2026-10-01&until=2026-10-31")
    october = row()
    assert october["count"] == "2"
    assert sorted(october["channels"].split(" · ")) == ["search 1", "suggest 1"]
    assert sorted(october["languages"].split(" · ")) == ["zh-Hans 1", "zh-Hant 1"]
    assert october["seen"] == "首次 first 2026-10-05 · 最近 last 2026-10-06"
    tab.shot("writers-range")
    page.locator("#since").fill("")
    page.locator("#until").fill("")
    page.locator("#range button[type=submit]").click()
    page.wait_for_url(lambda url: "since" not in url)
    page.locator("tr.topic", has_text="公司班").locator("td.num", has_text="3").wait_for()
    whole = row()
    assert sorted(whole["channels"].split(" · ")) == ["search 2", "suggest 1"]
    assert whole["seen"].startswith("首次 first 2026-10-05 · 最近 last ")
    assert not whole["seen"].endswith("2026-10-06")


def served_version(tab: Tab) -> str:
    return tab.page.evaluate("fetch('/healthz').then(r => r.json()).then(b => b.index_version)")


def test_url_state_survives_reload_and_back(tab: Tab) -> None:
    page = tab.page
    tab.go("/?q=printer&type=case&product=HP+LaserJet+M404")
    page.wait_for_selector("#results a.title")
    assert page.locator("#types input[value=case]").is_checked()
    assert not page.locator("#types input[value=faq]").is_checked()
    assert page.locator("#product").input_value() == "HP LaserJet M404"
    ids = page.locator("#results .card").evaluate_all("cs => cs.map(c => c.dataset.id)")
    assert ids and all(i in ("web-printer-toner", "printer-offline-hant") for i in ids)
    # A filter change is a new history entry; reload keeps it, back undoes it.
    page.locator("#types input[value=faq]").check()
    page.wait_for_url(lambda url: "type=faq" in url)
    page.reload()
    page.wait_for_selector("#results .card, #weak")
    assert page.locator("#types input[value=faq]").is_checked()
    assert page.locator("#q").input_value() == "printer"
    page.go_back()
    page.wait_for_url(lambda url: "type=faq" not in url)
    playwright.expect(page.locator("#types input[value=faq]")).not_to_be_checked()
    assert page.locator("#types input[value=case]").is_checked()


def test_hostile_text_stays_text(tab: Tab) -> None:
    page = tab.page
    query = "<script>window.__xss = 9</script> \"quotes\" 'single' <img src=x onerror=window.__xss=8>"
    tab.go("/?q=" + query.replace("<", "%3C").replace(">", "%3E").replace(" ", "+"))
    page.wait_for_selector("#results .card, #weak")
    assert page.locator("#q").input_value() == query
    assert page.title().startswith("<script>")
    tab.go("/a/web-hostile")
    page.wait_for_selector("article.doc h1")
    assert page.locator("article.doc h1").inner_text() == (
        "Quotes \"double\" and 'single' <script>window.__xss = 1</script>")
    assert "<script>window.__xss = 2</script>" in page.locator("article.doc").inner_text()
    assert page.locator("article.doc script, article.doc img").count() == 0
    assert page.locator("article.doc a[href^='javascript']").count() == 0
    assert page.evaluate("window.__xss") is None
    tab.shot("hostile-article")


def test_internal_article_is_marked(tab: Tab) -> None:
    tab.go("/a/complaint-escalation-sop#回复话术")
    page = tab.page
    page.wait_for_selector("#internal")
    assert "do not send to the customer" in page.locator("#internal").inner_text()
    assert page.locator("section.target").get_attribute("data-anchor") == "回复话术"
    assert page.locator("section.target button.copy").inner_text().endswith("Copy reply")
    tab.shot("internal-article")


def test_failed_build_problems_on_the_dashboard(tab: Tab, served: Served, tmp_path: Path) -> None:
    broken = tmp_path / "articles"
    shutil.copytree(served.settings.articles, broken)
    (broken / "web-hostile.md").write_text("---\nid: web-hostile\ntype: faq\n---\nno title\n")
    env = {**os.environ, "KB_ARTICLES": str(broken), "KB_INDEX": str(served.settings.index),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "kb", "index"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    tab.go("/writers")
    problems = tab.page.locator("#problems")
    problems.wait_for()
    assert f"{broken}/web-hostile.md:1: missing required 'title'" in problems.inner_text()
    with tab.page.expect_download() as download:
        tab.page.locator("#problems-csv").click()
    csv = Path(download.value.path()).read_text(encoding="utf-8")
    assert csv.splitlines()[:2] == ["path,line,message",
                                    f"{broken}/web-hostile.md,1,missing required 'title'"]


@pytest.mark.parametrize("path", ["/?q=打印机+脱机", "/?q=how+do+I+book+a+meeting+room",
                                  "/a/web-printer-toner#resolution-steps", "/writers",
                                  "/a/rfd-missing"])
def test_phone_width_has_no_sideways_scroll(browser, served: Served, path: str) -> None:
    tab = Tab(browser, served, width=390)
    try:
        tab.go(path)
        tab.page.wait_for_load_state("networkidle")
        tab.no_overflow()
        names = {"/?q=打": "search", "/?q=how": "no-confident-answer", "/a/web": "article",
                 "/writers": "writers", "/a/rfd": "article-missing"}
        tab.shot("phone-" + next(v for k, v in names.items() if path.startswith(k)))
    finally:
        tab.errors = [e for e in tab.errors if "404" not in e]  # /a/rfd-missing: a 404 on purpose
        tab.close()


def test_api_docs_render_offline(tab: Tab) -> None:
    tab.go("/docs")
    tab.page.wait_for_selector(".swagger-ui .opblock", timeout=20000)
    assert tab.page.locator(".swagger-ui .opblock-summary-path", has_text="/articles/{article_id}").count()
    tab.shot("docs")
    tab.go("/redoc")
    tab.page.wait_for_selector("redoc [role=menuitem], redoc .menu-content", timeout=20000)
    tab.page.wait_for_load_state("networkidle")
    # ReDoc's footer logo points at its CDN: the page's policy refuses it before any request.
    tab.errors = [e for e in tab.errors if "cdn.redoc.ly" not in e and "ERR_BLOCKED" not in e]
