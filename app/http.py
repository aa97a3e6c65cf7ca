"""The app's Request class (bodies that can never escape as a 500), and content negotiation."""
from __future__ import annotations

from typing import IO, Any

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

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        stream = super()._get_file_stream(total_content_length, content_type, filename, content_length)
        self.__dict__.setdefault("_part_streams", []).append(stream)
        return stream

    def close(self) -> None:
        super().close()
        # A parse cut short (a part, field or size limit; a client gone) never hands its
        # spooled parts to request.files, so they are closed here rather than left to the GC.
        for stream in self.__dict__.pop("_part_streams", ()):
            stream.close()


def wants_json() -> bool:
    """Whether the client prefers JSON to a page (the upload script, API-minded clients)."""
    return request.accept_mimetypes.best == "application/json"
