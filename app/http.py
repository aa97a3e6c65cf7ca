"""The app's Request class (bodies that can never escape as a 500), and content negotiation."""
from __future__ import annotations

from typing import IO, Any

from flask import Request, request
from werkzeug.formparser import FormDataParser, MultiPartParser

from app.errors import BadRequest
from app.services import spool


class _LargeReadParser(FormDataParser):
    """werkzeug's form parser reading a multipart body in 256 KiB pieces, not 64 KiB: a 22 MB
    upload parses in about two thirds of the time (BENCHMARKS.md); smaller when
    MAX_FORM_MEMORY_SIZE is below 512 KiB. werkzeug offers no setting for it, so
    this repeats its `_parse_multipart` with the size given (tests/test_413.py and every upload
    test go through it)."""

    def _parse_multipart(self, stream: IO[bytes], mimetype: str, content_length: int | None,
                         options: dict[str, str]) -> tuple[IO[bytes], Any, Any]:
        parser = MultiPartParser(stream_factory=self.stream_factory, max_form_memory_size=self.max_form_memory_size,
                                 max_form_parts=self.max_form_parts, cls=self.cls, buffer_size=self._piece())
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files

    def _piece(self) -> int:
        # The decoder refuses (413) a piece that, with what it holds, passes the memory limit.
        limit = self.max_form_memory_size
        return 256 * 1024 if limit is None or limit >= 512 * 1024 else max(64 * 1024, limit // 2)


class ChartboxRequest(Request):
    """Flask's request, with JSON nested past the parser's recursion limit refused as a 400.

    Flask turns malformed JSON into a 400 itself, but a body like `[[[[…]]]]` raises
    RecursionError, which it does not catch; every door reads JSON through here. Multipart
    bodies are parsed in larger pieces, each file part written straight into the upload temp
    folder (spool.Part).
    """

    form_data_parser_class = _LargeReadParser

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("The JSON body is nested too deeply.") from None

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        try:  # straight into the upload temp folder, where spool() takes it over (spool.Part)
            stream: IO[bytes] = spool.Part(spool.folder())
        except OSError:  # a broken temp folder: the default, and receiving it reports the outage (503)
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
