"""URL converters the doors' routes share.

`<segment_except("word"):name>` is one path segment that is never `word`: where a route with a
variable segment sits beside a fixed one (Candid's `/<encounter_id>` beside
`/create-from-charge-capture-external-id`, `/<image_id>/<version>` beside
`/<image_id>/content`), the fixed path then matches only its own rules, so a method it does not
declare answers 405 with its own Allow, not the variable route's 404 or methods.
"""
from __future__ import annotations

import re

from flask import Flask
from werkzeug.routing import BaseConverter, Map


class SegmentExcept(BaseConverter):
    """Any one segment except the words given."""

    def __init__(self, url_map: Map, *words: str) -> None:
        super().__init__(url_map)
        excluded = "|".join(re.escape(word) for word in words)
        self.regex = f"(?!(?:{excluded})$)[^/]+"


def register_converters(app: Flask) -> None:
    """Before any blueprint: their rules are compiled with these."""
    app.url_map.converters["segment_except"] = SegmentExcept
