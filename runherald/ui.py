"""The dashboard every worker serves at ``/ui``: plain server-rendered pages (jinja2, autoescaped) over
the HTTP API, with one small script and one stylesheet (``ui_files/``: package data, no build step, no
CDN).

Pages: runs as they happen (``/ui/runs``: the runs list, kept live over the SSE stream), one run
(``/ui/runs/{project}/{uid}``: its notifications, every attempt, "silence this"), the dead letter
(``/ui/dead-letter``: replay), the alert configuration (``/ui/config``: rules, receivers, silences, the
rules' dry run) and deliveries per minute by outcome (``/ui/deliveries``: a chart). The pages' data comes
from the API's JSON (the script writes it with textContent), authenticated by the session cookie
(runherald.ui_session); with a tokens file, a page without a valid cookie redirects to the login page;
without one (a loopback worker, as `runherald dev` runs), the dashboard is open as the API is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from runherald.auth import ApiToken, TokenTable
from runherald.ui_session import COOKIE, UI_PREFIX, end_session, same_origin, set_session

log = logging.getLogger("runherald.api")

FILES = Path(__file__).with_name("ui_files")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
# script-src 'self': the script is a file; no inline script, style or handler runs.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PAGES = {  # path under /ui: (template, title)
    "/runs": ("runs.html", "Runs"),
    "/dead-letter": ("dead_letter.html", "Dead letter"),
    "/config": ("config.html", "Rules, receivers and silences"),
    "/deliveries": ("deliveries.html", "Deliveries per minute"),
}
NAV = [("/runs", "Runs"), ("/dead-letter", "Dead letter"), ("/config", "Rules & silences")]
NAV.append(("/deliveries", "Deliveries"))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(FILES), autoescape=True, undefined=jinja2.StrictUndefined
    )


def _static_files() -> dict[str, tuple[bytes, str]]:
    return {
        path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
        for path in sorted(FILES.iterdir())
        if path.suffix in STATIC_TYPES
    }


def _secured(response: web.Response) -> web.Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(location: str) -> web.Response:
    return _secured(web.Response(status=303, headers={"Location": location}))


def _next_page(given: str) -> str:
    """Where to go after logging in: a page of the dashboard (never another site), else the runs."""
    if given.startswith(UI_PREFIX + "/") and "//" not in given and "\\" not in given:
        return given
    return UI_PREFIX + "/runs"


def _who(token: ApiToken | None) -> dict[str, Any]:
    if token is None:
        return {"name": "", "scopes": "", "admin": True}
    scopes = ", ".join(sorted(token.scopes))
    return {"name": token.name, "scopes": scopes, "admin": token.allows("admin")}


def add_ui_routes(app: web.Application, tokens: TokenTable | None) -> None:
    """Register the dashboard's pages and files under /ui (`tokens`: the API's, None when it is open)."""
    environment = _environment()
    static = _static_files()

    def render(template: str, status: int = 200, **context: Any) -> web.Response:
        body = environment.get_template(template).render(
            prefix=UI_PREFIX, nav=NAV, auth=tokens is not None, **context
        )
        return _secured(web.Response(text=body, status=status, content_type="text/html", charset="utf-8"))

    def session(request: web.Request) -> tuple[bool, ApiToken | None]:
        """(whether the request may see the pages, the token it presents)."""
        if tokens is None:
            return True, None
        token = tokens.find(request.cookies.get(COOKIE, "")) if request.cookies else None
        return (token is not None and token.allows("read")), token

    def login_page(next_page: str, error: str = "", status: int = 200) -> web.Response:
        return render("login.html", status, title="Log in", page="login", next=next_page, error=error)

    def page(path: str) -> Any:
        template, title = PAGES[path]

        async def show(request: web.Request) -> web.Response:
            allowed, token = session(request)
            if not allowed:
                return _redirect(f"{UI_PREFIX}/login?next={quote(UI_PREFIX + path, safe='/')}")
            return render(template, title=title, page=path.strip("/"), who=_who(token), here=path)

        return show

    async def show_run(request: web.Request) -> web.Response:
        project, uid = request.match_info["project"], request.match_info["uid"]
        allowed, token = session(request)
        if not allowed:
            target = quote(f"{UI_PREFIX}/runs/{project}/{uid}", safe="/")
            return _redirect(f"{UI_PREFIX}/login?next={target}")
        return render(
            "run.html",
            title=f"Run {project}/{uid}",
            page="run",
            who=_who(token),
            here="/runs",
            project=project,
            uid=uid,
        )

    async def get_login(request: web.Request) -> web.Response:
        next_page = _next_page(request.query.get("next", ""))
        if tokens is None or session(request)[0]:
            return _redirect(next_page)
        return login_page(next_page)

    async def post_login(request: web.Request) -> web.Response:
        if not same_origin(request):
            return login_page(UI_PREFIX + "/runs", "this form was not sent from this dashboard", 403)
        form = await request.post()
        next_page = _next_page(str(form.get("next", "")))
        if tokens is None:
            return _redirect(next_page)
        presented = str(form.get("token", "")).strip()
        token = tokens.find(presented) if presented else None
        if token is None:
            log.info("dashboard: a login with an unknown token was refused")
            return login_page(next_page, "That token is not valid.", 401)
        if not token.allows("read"):
            return login_page(
                next_page, f"Token {token.name!r} lacks the read scope the dashboard needs.", 403
            )
        response = _redirect(next_page)
        set_session(response, request, presented)
        return response

    async def post_logout(request: web.Request) -> web.Response:
        if not same_origin(request):
            return _secured(web.Response(status=403, text="this form was not sent from this dashboard"))
        response = _redirect(UI_PREFIX + "/login" if tokens is not None else UI_PREFIX + "/runs")
        end_session(response, request)
        return response

    async def get_static(request: web.Request) -> web.Response:
        found = static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text=f"no such file: {request.path}")
        body, content_type = found
        response = _secured(web.Response(body=body, content_type=content_type, charset="utf-8"))
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def root(request: web.Request) -> web.Response:
        return _redirect(UI_PREFIX + "/runs")

    app.router.add_get(UI_PREFIX, root)
    app.router.add_get(UI_PREFIX + "/", root)
    app.router.add_get(UI_PREFIX + "/login", get_login)
    app.router.add_post(UI_PREFIX + "/login", post_login)
    app.router.add_post(UI_PREFIX + "/logout", post_logout)
    app.router.add_get(UI_PREFIX + "/static/{name}", get_static)
    app.router.add_get(UI_PREFIX + "/runs/{project}/{uid}", show_run)
    for path in PAGES:
        app.router.add_get(UI_PREFIX + path, page(path))


__all__ = ["CSP", "add_ui_routes"]
