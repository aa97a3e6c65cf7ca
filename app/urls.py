"""Absolute links to what the services authorise: the one place a signature meets url_for.

Services return what a link needs (the file, a signature); the doors — pages and API
dialects alike — build the URL here, so no service ever knows a route.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context, request, url_for

from app.models import StoredFile, User
from app.services import signing

VIEW_ENDPOINT = "links.view_file"


def view_url(row: StoredFile, viewer: User | None = None, size: str | None = None,
             preview: int | None = None) -> str:
    """A fresh signed, absolute view link for a file (the download link of every dialect),
    minted for `viewer` (the file's creator when None: only tests and tools omit it).

    `size` asks for an image rendition; `preview=<page>` asks for a PNG of that PDF page
    (sized by `size`, else viewing.PREVIEW_BOX). Neither is signed: they only pick a rendition.
    """
    params: dict[str, Any] = dict(signing.view_grant(row.public_id, (viewer or row.creator).id))
    if size:
        params["size"] = size
    if preview:
        params["preview"] = preview
    return external_url(VIEW_ENDPOINT, file_id=row.public_id, **params)


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for an endpoint, on the public address (see public_base())."""
    return public_base() + url_for(endpoint, _external=False, **values)


def public_base() -> str:
    """Scheme and host of every absolute link: PUBLIC_URL when set; else the configured
    SERVER_NAME; else the address the server is bound to (what a trusted proxy says, via
    ProxyFix, when TRUSTED_PROXIES is set). Never the client's Host header, which anyone can
    forge to point links (and the secrets in them) at their own site."""
    config = current_app.config
    if config.get("PUBLIC_URL"):
        return str(config["PUBLIC_URL"]).rstrip("/")
    if not has_request_context():
        return f"{config.get('PREFERRED_URL_SCHEME', 'http')}://{config.get('SERVER_NAME') or 'localhost'}"
    environ = request.environ
    scheme = environ.get("wsgi.url_scheme", config.get("PREFERRED_URL_SCHEME", "http"))
    if config.get("SERVER_NAME"):
        return f"{scheme}://{config['SERVER_NAME']}"
    if config.get("TRUSTED_PROXIES") and environ.get("HTTP_X_FORWARDED_HOST"):
        return f"{scheme}://{request.host}"  # ProxyFix set it from the trusted proxy's header
    host, port = environ.get("SERVER_NAME", "localhost"), str(environ.get("SERVER_PORT", ""))
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    default = {"http": "80", "https": "443"}.get(scheme)
    return f"{scheme}://{host}" + ("" if not port or port == default else f":{port}")
