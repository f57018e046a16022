"""Signing in with an API key in a real browser: the page sends the browser to the login form,
the session cookie it sets carries the key to the page's own API calls, and signing out ends
it. Against a real uvicorn on 127.0.0.1 whose database holds a key."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.config import Settings
from kb.keys import create_key
from kb.storage import open_store
from tests.test_browser import Served, Tab, browser, pytestmark, search, serving  # noqa: F401
from tests.test_web_api import web_kb  # noqa: F401


@pytest.fixture(scope="module")
def keyed(web_kb: Path, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
          real_embedder) -> Iterator[tuple[Served, str]]:
    root = tmp_path_factory.mktemp("login-served")
    shutil.copytree(web_kb / "index", root / "index")
    settings = Settings(index=root / "index", articles=web_kb / "articles",
                        gap_db=root / "gaps.sqlite3", reload_interval=0)
    store = open_store(settings)
    _, secret = create_key(store, "browser", "agent", "internal")
    store.close()
    with serving(settings, real_embedder) as url:
        yield Served(url, settings), secret


def test_sign_in_search_and_sign_out(browser, keyed) -> None:  # noqa: F811
    served, secret = keyed
    tab = Tab(browser, served)
    page = tab.page
    tab.go("/?q=printer")
    page.wait_for_url(lambda url: "/login?next=" in url)
    page.fill("#key", "kb_" + "x" * 43)
    page.click("button[type=submit]")
    assert "密钥无效或已吊销" in page.inner_text("body")
    # The refused sign-in answers 401, which the browser notes on its console.
    assert tab.errors == ["Failed to load resource: the server responded with a status of 401 "
                          "(Unauthorized)"]
    tab.errors.clear()
    page.fill("#key", secret)
    page.click("button[type=submit]")
    page.wait_for_url(served.url + "/?q=printer")
    cookie = next(c for c in tab.context.cookies() if c["name"] == "kb_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert cookie["expires"] == -1  # a session cookie: gone with the browser session
    assert page.evaluate("document.cookie") == ""  # no script on the page can read the key
    search(tab, "printer toner low but new cartridge")
    assert page.locator("#results a.title").count() >= 1
    page.click("form.signout button")
    page.wait_for_url(lambda url: url.endswith("/login?signed_out=1"))
    assert not [c for c in tab.context.cookies() if c["name"] == "kb_session"]
    tab.go("/")
    page.wait_for_url(lambda url: "/login?next=" in url)
    tab.close()
