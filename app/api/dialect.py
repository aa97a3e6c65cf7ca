"""One declaration per API dialect, and the one request prologue every dialect shares.

A dialect names its blueprints, the URL prefixes whose errors it renders, its audit channel,
how it reads a credential from a request and which endpoints need none. `register_dialect`
wires it in; one `before_request` then sets `g.origin` (every request) and `g.actor` (every
token-authenticated endpoint), and error rendering picks the dialect with the longest prefix
matching the path (so `/api_v3/files/view/` beats `/api_v3/`). Adding a dialect is one
`Dialect(...)` plus its routes and shapes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Flask, Request, Response, current_app, g, request

from app.errors import ChartboxError, Unauthorized, render_page_error
from app.models import Channel, User
from app.services import accounts
from app.services.audit import Origin

Renderer = Callable[[ChartboxError], Response]
CredentialReader = Callable[[Request], "str | None"]
_KEY = "chartbox_dialects"


def header(name: str) -> CredentialReader:
    """A credential carried in a header of its own (`X-ApiToken`, `X-API-Key`)."""
    return lambda req: req.headers.get(name)


def authorization(scheme: str) -> CredentialReader:
    """A credential in `Authorization: <scheme> <credential>` (`Bearer`, `Token`)."""

    def read(req: Request) -> str | None:
        kind, _, credential = req.headers.get("Authorization", "").strip().partition(" ")
        if kind.lower() != scheme.lower():
            return None
        return credential.strip() or None

    return read


@dataclass(frozen=True)
class Dialect:
    """An API door in one vendor's shape.

    Attributes:
        name: a short label (logs, the README).
        channel: recorded as the door of every audit event it causes.
        blueprints: its routes.
        prefixes: URL prefixes whose errors it renders; a `*` segment matches any one segment
            (Claros shares `/patients/` with the pages: `/patients/*/pdf`).
        render_error: turns a ChartboxError into a response in the vendor's error shape.
        credential: reads the API token from a request; None for doors that use no token.
        public: endpoints reachable without a token (sign-in, signed URLs).
        check_actor: an extra check of the authenticated user (VSee's X-AccountCode).
        body_limit: the config key of a larger request-body limit for this door.
    """

    name: str
    channel: str  # a Channel, or the dialect's own name for its door
    blueprints: tuple[Blueprint, ...]
    prefixes: tuple[str, ...]
    render_error: Renderer
    credential: CredentialReader | None = None
    public: frozenset[str] = field(default_factory=frozenset)
    check_actor: Callable[[User], None] | None = None
    body_limit: str | None = None


def register_dialect(app: Flask, dialect: Dialect) -> None:
    """Register a dialect's blueprints (CSRF-exempt: tokens, never the session cookie)."""
    from app.extensions import csrf

    registry = app.extensions.setdefault(_KEY, {"by_blueprint": {}, "prefixes": []})
    for blueprint in dialect.blueprints:
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
        registry["by_blueprint"][blueprint.name] = dialect
    for prefix in dialect.prefixes:
        registry["prefixes"].append((_segments(prefix), dialect))
    # Longest first: the most specific door renders the error.
    registry["prefixes"].sort(key=lambda item: len(item[0]), reverse=True)


def install_prologue(app: Flask) -> None:
    """The one before_request (origin for every request, actor for every token door), and the
    error renderer chooser the app-level handlers ask."""
    app.extensions["chartbox_error_renderer"] = renderer_for

    @app.before_request
    def dialect_prologue() -> None:
        dialect = current_dialect()
        g.origin = Origin.of(request, dialect.channel if dialect else Channel.WEB)
        if dialect is None:
            return
        if dialect.body_limit:
            request.max_content_length = current_app.config[dialect.body_limit]
        if dialect.credential is None or request.endpoint in dialect.public:
            return
        try:
            g.actor = accounts.resolve_token(dialect.credential(request))
        except Unauthorized as err:
            err.audit = {"reason": "no valid credential"}  # a refused access, recorded
            raise
        if dialect.check_actor is not None:
            dialect.check_actor(g.actor)

    @app.after_request
    def api_headers(resp: Response) -> Response:
        # API answers carry patient data: never cached, never sniffed into another type.
        if current_dialect() is not None:
            resp.headers.setdefault("Cache-Control", "no-store")
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp


def current_dialect() -> Dialect | None:
    """The dialect whose blueprint serves this request, if any."""
    registry = current_app.extensions.get(_KEY)
    if registry is None or request.blueprint is None:
        return None
    return registry["by_blueprint"].get(request.blueprint)


def renderer_for(path: str) -> Renderer:
    """The error renderer of the dialect with the longest prefix matching `path`; else the pages'."""
    registry = current_app.extensions.get(_KEY)
    if registry is not None:
        parts = _segments(path)
        for pattern, dialect in registry["prefixes"]:
            if len(parts) >= len(pattern) and all(p in ("*", s) for p, s in zip(pattern, parts, strict=False)):
                return dialect.render_error
    return render_page_error


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)
