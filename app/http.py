"""The app's Request class (bodies that can never escape as a 500), and content negotiation."""
from __future__ import annotations

from typing import Any

from flask import Request, request

from app.errors import BadRequest


class ChartboxRequest(Request):
    """Flask's request, with JSON nested past the parser's recursion limit refused as a 400.

    Flask turns malformed JSON into a 400 itself, but a body like `[[[[…]]]]` raises
    RecursionError, which it does not catch; every door reads JSON through here.
    """

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("The JSON body is nested too deeply.") from None


def wants_json() -> bool:
    """Whether the client prefers JSON to a page (the upload script, API-minded clients)."""
    return request.accept_mimetypes.best == "application/json"
