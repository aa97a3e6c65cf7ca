"""Absolute links to what the services authorise: the one place a signature meets url_for.

Services return what a link needs (the file, a signature); the doors — pages and API
dialects alike — build the URL here, so no service ever knows a route.
"""
from __future__ import annotations

from typing import Any

from flask import url_for

from app.models import StoredFile
from app.services import signing

VIEW_ENDPOINT = "links.view_file"


def view_url(row: StoredFile, size: str | None = None, preview: int | None = None) -> str:
    """A fresh signed, absolute view link for a file (the download link of every dialect).

    `size` asks for an image rendition; `preview=<page>` asks for a PNG of that PDF page
    (sized by `size`, else viewing.PREVIEW_BOX). Neither is signed: they only pick a rendition.
    """
    params: dict[str, Any] = dict(signing.view_grant(row.public_id))
    if size:
        params["size"] = size
    if preview:
        params["preview"] = preview
    return url_for(VIEW_ENDPOINT, file_id=row.public_id, _external=True, **params)
