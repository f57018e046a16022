"""The pages people use: search, an article, the writers' dashboard, and the API docs, all
served from this package and installed packages (no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.deps import ArticlePage, SearchPage, WritersPage

STATIC = Path(__file__).parent.parent / "static"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI and ReDoc dist files

# The pages hold no inline script: only the app's own files run, whatever an article says.
PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; object-src 'none'; base-uri 'none'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

# The API docs: Swagger UI starts from an inline script, ReDoc searches in a blob worker; neither
# may load anything from elsewhere (ReDoc's footer logo would come from its CDN).
DOCS_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
               "script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
               "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'")

router = APIRouter(include_in_schema=False)
# The pages answer HEAD as GET (uvicorn leaves out the body): uptime checkers ask with HEAD.


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def search_page(caller: SearchPage) -> HTMLResponse:
    return _page("index.html")


@router.api_route("/a/{article_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def article_page(article_id: str, caller: ArticlePage) -> HTMLResponse:
    # The page fetches /articles/{id} with the reader's own credentials: it holds no data itself.
    return _page("article.html")


@router.api_route("/writers", methods=["GET", "HEAD"], response_class=HTMLResponse)
def writers_page(caller: WritersPage) -> HTMLResponse:
    return _page("writers.html")


def install(app: FastAPI) -> None:
    """Register the pages, their static files and the offline API docs."""
    app.include_router(router)
    # The more specific mount first: /static would otherwise take /static/docs/… too.
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _docs(get_swagger_ui_html(
            openapi_url=openapi, title=f"{app.title} · API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        ))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _docs(get_redoc_html(
            openapi_url=openapi, title=f"{app.title} · API",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False,
        ))


def _docs(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page
