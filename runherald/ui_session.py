"""The dashboard's session: the API token a browser keeps in a cookie, and the checks against CSRF.

The token is entered once on the login page (``/ui/login``, a POST form: never in a URL) and kept in an
HttpOnly, SameSite=Strict cookie (`COOKIE`, Path=/, Secure over https), which the API accepts as it
accepts ``Authorization: Bearer``: so the pages' fetch() and EventSource calls are authenticated
without the page ever holding the token. A state-changing request authenticated by the cookie must also
carry `UI_HEADER` (a header a cross-site form cannot send, and a cross-site fetch() cannot send without a
CORS preflight the API never grants); the dashboard's own form posts (login, logout) are checked by
their Origin instead (`same_origin`).
"""

from __future__ import annotations

from aiohttp import web

from runherald.auth import bearer_token

COOKIE = "runherald_ui"
UI_HEADER = "X-Runherald-UI"
UI_PREFIX = "/ui"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(request: web.Request) -> tuple[str, bool]:
    """(the token a request presents, whether it came from the dashboard's cookie): the bearer header
    first, then the cookie; ("", False) for neither."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if token:
        return token, False
    cookie = request.cookies.get(COOKIE, "").strip()
    return cookie, bool(cookie)


def csrf_refusal(request: web.Request) -> str | None:
    """Why a request authenticated by the cookie may not change anything (None: it may): a change
    needs the dashboard's header `UI_HEADER: 1`."""
    if request.method in SAFE_METHODS or request.headers.get(UI_HEADER) == "1":
        return None
    return f"a change authenticated by the dashboard's cookie needs the {UI_HEADER}: 1 header"


def same_origin(request: web.Request) -> bool:
    """Whether a form post comes from this server's own pages: its Origin (or, without one, its
    Referer) names this scheme and host; a request naming neither is let through (not a browser's)."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if referer is None:
            return True
        origin = "/".join(referer.split("/", 3)[:3])
    return origin == f"{request.scheme}://{request.host}"


def set_session(response: web.StreamResponse, request: web.Request, token: str) -> None:
    """Keep `token` in the session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over https."""
    response.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Strict", secure=request.secure)


def end_session(response: web.StreamResponse, request: web.Request) -> None:
    """Remove the session cookie."""
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=request.secure)


def is_ui_path(path: str) -> bool:
    """Whether a path is the dashboard's (which authenticates its own pages: a redirect to log in,
    not a 401)."""
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


__all__ = [
    "COOKIE",
    "UI_HEADER",
    "UI_PREFIX",
    "csrf_refusal",
    "end_session",
    "is_ui_path",
    "presented_token",
    "same_origin",
    "set_session",
]
