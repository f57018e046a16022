"""The login form of the web pages: it keeps an API key in a session cookie.

The cookie is HttpOnly (page scripts cannot read the key), SameSite=Strict (no other site's
page can send it along) and Secure when the page is served over HTTPS; it lasts as long as the
browser session. Behind a proxy that ends TLS, uvicorn's proxy headers make the scheme https.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kb.keys import Permission
from service.auth import COOKIE, Auth

router = APIRouter(include_in_schema=False)
MAX_FORM = 4096  # a key and a path; anything longer is not a login

_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer"}

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · Sign in — kb</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 4rem auto; padding: 0 1rem; }}
label {{ display: block; margin: 1rem 0 .3rem; }}
input[type=password] {{ width: 100%; padding: .5rem; box-sizing: border-box; }}
button {{ margin-top: 1rem; padding: .5rem 1.2rem; }}
.error {{ color: #a40000; }}
.note {{ color: #555; font-size: .9rem; }}
</style></head>
<body>
<h1>登录 <small>Sign in</small></h1>
{message}
<form method="post" action="/login">
<label for="key">API 密钥 <span lang="en">API key</span></label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 <span lang="en">Sign in</span></button>
</form>
<p class="note">向管理员索取密钥（kb keys create）。<span lang="en">Ask an administrator for a
key (kb keys create).</span></p>
</body></html>
"""

ERRORS = {
    "unknown": "密钥无效或已吊销。<span lang=\"en\">The key is unknown or revoked.</span>",
    "role": "此密钥不能使用网页（仅限接口调用）。<span lang=\"en\">This key cannot use the web "
            "pages (API only).</span>",
    "signed_out": "已退出登录。<span lang=\"en\">Signed out.</span>",
}


def safe_next(value: str | None) -> str:
    """Only a path on this site: a login link must not send the browser elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def page(next_path: str = "/", error: str | None = None, status: int = 200) -> HTMLResponse:
    message = f'<p class="{"note" if error == "signed_out" else "error"}">{ERRORS[error]}</p>' \
        if error else ""
    return HTMLResponse(PAGE.format(message=message, next=html.escape(safe_next(next_path))),
                        status_code=status, headers=_HEADERS)


@router.api_route("/login", methods=["GET", "HEAD"], response_class=HTMLResponse)
def login_form(next: str = "/", signed_out: bool = False) -> HTMLResponse:
    return page(next, "signed_out" if signed_out else None)


@router.post("/login")
async def login(request: Request) -> Response:
    body = await request.body()
    form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace")) if len(body) <= MAX_FORM else {}
    secret = (form.get("key") or [""])[0].strip()
    next_path = safe_next((form.get("next") or ["/"])[0])
    auth: Auth = request.app.state.auth
    key = await run_in_threadpool(auth.lookup, secret) if secret else None
    if key is None:
        return page(next_path, "unknown", 401)
    if not key.may(Permission.SEARCH):
        return page(next_path, "role", 403)
    response = RedirectResponse(next_path, status_code=303, headers=_HEADERS)
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login?signed_out=1", status_code=303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
