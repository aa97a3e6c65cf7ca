"""Where a page sends people next: safe `next` targets and each role's home page."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, request, url_for
from flask_babel import gettext
from flask_login import current_user
from werkzeug.wrappers import Response

from app.api import params
from app.errors import BadRequest


def safe_next(value: str | None) -> str | None:
    """`value` if it is a local path on this site (`/documents?page=2`), else None.

    Refuses absolute and scheme-relative URLs (`https://evil`, `//evil`, `/\\evil`), control
    characters and anything a browser might read as another host.
    """
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if value.startswith(("//", "/\\")) or "\\" in value:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def home_url() -> str:
    """The signed-in user's starting page: providers their patient list, patients their documents."""
    if current_user.is_authenticated and current_user.is_staff:
        return url_for("chart.patients")
    return url_for("documents.index")


def back(value: str | None = None, fragment: str | None = None) -> Response:
    """Redirect (303, so a POST is not repeated) to a safe `next`, else the user's home;
    `fragment` names the element the page then focuses (the row acted on, chartbox.js)."""
    target = safe_next(value if value is not None else request.form.get("next")) or home_url()
    if fragment:
        target = target.split("#", 1)[0] + "#" + fragment
    return redirect(target, code=303)


def here() -> str:
    """The current page as a local path, for `next` fields."""
    path = request.full_path
    return path[:-1] if path.endswith("?") else path


def page_url(number: int) -> str:
    """This page's address with `page=number`, keeping its other query arguments (e.g. `q`)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    return url_for(request.endpoint or "home.index", **(request.view_args or {}), **args, page=number)


def page_number() -> int:
    """`?page=N` (1 when absent). Raises BadRequest for junk, so links never silently lie."""
    try:
        return params.positive(request.args.get("page"), "page", maximum=999_999) or 1
    except BadRequest:
        raise BadRequest(gettext("The page number must be a whole number from 1.")) from None
