"""The dashboard's FastAPI application: pages, the JSON API, access control and error pages.

The app only ever reads. Every route is a GET; the ledger is opened with ``create=False`` and
``spool=False`` so starting it can neither create a schema nor drain a spool; an SQLite path that
does not exist is refused instead of being created empty.

Access: with a token configured every request needs it, as ``Authorization: Bearer <token>``
(scripts; read by FastAPI's ``HTTPBearer``) or once as ``?token=<token>`` (a browser), which
answers with a cookie holding an HMAC of the token and a redirect to the same page without it,
so the token leaves the address bar. Without a token the app may be limited to loopback ``Host``
names (Starlette's ``TrustedHostMiddleware``), so a web page elsewhere cannot read the ledger
through DNS rebinding.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .._errors import ConfigurationError, ModeltrailError, NotFoundError, SchemaError, StorageError, ValidationError
from .._tracker import Tracker
from . import api, artifacts, pages
from .format import FILTERS

HERE = Path(__file__).parent
COOKIE = "modeltrail_ui"
#: What the browser may load: only this server's own scripts, styles and images; no frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: Reads ``Authorization: Bearer <token>``; None when absent, so a cookie or ``?token=`` may serve instead.
BEARER = HTTPBearer(auto_error=False)


def session_value(token: str) -> str:
    """The cookie a browser keeps: an HMAC of the token, so the cookie jar never holds the token itself."""
    return hmac.new(token.encode(), b"modeltrail-ui-session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def open_ledger(uri: str | None) -> Tracker:
    """A Tracker that can only read: no schema creation, no spool, no writer thread, no new SQLite file."""
    return Tracker.open_ledger(uri, hint="point --uri at an existing ledger")


def _host_pattern(name: str) -> str:
    """A ``Host`` name as TrustedHostMiddleware compares it: an IPv6 address in brackets."""
    name = name.lower()
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def make_templates() -> Jinja2Templates:
    """Jinja2 with autoescaping on for every template: model names and params are user data."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals["version"] = __version__
    return Jinja2Templates(env=env)


def _status_of(error: ModeltrailError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, (StorageError, SchemaError)):
        return 503
    return 500


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/openapi.json"


def create_app(
    uri: str | None = None,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The dashboard over the ledger at ``uri`` (argument, ``MODELTRAIL_URI``, ``./modeltrail.db``).

    ``token``: when set, every request must carry it. ``allowed_hosts``: when set, requests whose
    ``Host`` is not one of these names are refused (the server passes the loopback names when it
    listens on loopback).
    """
    if token is not None and not token.strip():
        raise ConfigurationError("the dashboard token must not be empty")
    tracker = open_ledger(uri)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        tracker.close()

    app = FastAPI(
        title="modeltrail dashboard",
        version=__version__,
        description=(
            "Read-only JSON API over a modeltrail ledger: models, versions, leaderboards, comparisons, "
            "metric histories, deployments and the audit log. Every route is a GET. A model is named by "
            "its name or its id. Non-finite metric values (NaN, infinities) are `null` in JSON. "
            "With a token configured, send `Authorization: Bearer <token>`."
        ),
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN; the dashboard works offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.tracker = tracker
    app.state.templates = make_templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(HeadAsGet)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[_host_pattern(h) for h in allowed_hosts])
    app.include_router(api.router)
    app.include_router(artifacts.router)  # before the pages: /models/{model} takes every path under it
    app.include_router(pages.router)
    session = session_value(token) if token is not None else None

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await _refuse(request)
        if response is None:
            response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _refuse(request: Request) -> Response | None:
        """A response when the request may not go on: a missing or wrong token (hosts are checked inside)."""
        if token is None or session is None:
            return None
        supplied = request.query_params.get("token")
        if supplied is not None:
            if not _same(supplied, token):
                return _unauthorized(request)
            query = "&".join(f"{k}={v}" for k, v in _query_without_token(request))
            # Always a path on this server: "//evil.example/x" would be another host to a browser.
            target = "/" + quote(request.url.path.lstrip("/\\")) + (f"?{query}" if query else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, session, httponly=True, samesite="lax", path="/")
            return response
        bearer = await BEARER(request)
        if bearer is not None and _same(bearer.credentials, token):
            return None
        if _same(request.cookies.get(COOKIE, ""), session):
            return None
        return _unauthorized(request)

    def _unauthorized(request: Request) -> Response:
        headers = {"WWW-Authenticate": "Bearer"}
        if _wants_json(request) or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": "a token is required"}, status_code=401, headers=headers)
        page = app.state.templates.get_template("error.html").render(
            status=401, message="This dashboard needs its token: open it once with ?token=<token>.", nav=None
        )
        return HTMLResponse(page, status_code=401, headers=headers)

    @app.exception_handler(ModeltrailError)
    async def ledger_error(request: Request, error: ModeltrailError) -> Response:
        return _error(request, _status_of(error), str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _error(request, error.status_code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": _jsonable(error.errors())}, status_code=422)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
        return _error(request, 422, problems)

    def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if _wants_json(request) or request.method != "GET":
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        return app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"status": status, "message": message, "nav": None},
            status_code=status,
            headers=headers,
        )

    return app


class HeadAsGet:
    """Answers HEAD like the GET of the same URL, without the body: the only other method the app takes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _query_without_token(request: Request) -> list[tuple[str, str]]:
    return [(quote(k, safe=""), quote(v, safe="")) for k, v in request.query_params.multi_items() if k != "token"]


def _jsonable(value: Any) -> Any:
    """Validation errors may carry exceptions and non-finite floats; JSON gets their text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
