"""One exception tree for the whole app, and the app-level handlers that render it.

Services raise ChartboxError subclasses; each API dialect declares a renderer for its URL
prefixes (app/api/dialect.py) so the same error comes out in that door's vendor shape. The
handlers sit at app level because 404/405/413 can happen before a blueprint is chosen.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from app.i18n import N_


class ChartboxError(Exception):
    """A failure with an HTTP status and a stable machine code."""

    status = 500
    code = "internal_error"
    default_message = N_("Something went wrong on our side.")

    #: Set on a refusal worth auditing (a real object out of reach, a rejected link): what
    #: the handler records as a REFUSED event after rolling the request back.
    audit: dict | None = None

    def __init__(self, message: str | None = None, **extra):
        # The default in the request's language (an API request's is English); a message given
        # was translated where it was produced.
        self.message = message or gettext(self.default_message)
        super().__init__(self.message)
        self.extra = extra


class BadRequest(ChartboxError):
    status, code, default_message = 400, "bad_request", N_("The request is not valid.")


class InvalidUpload(BadRequest):
    code = "invalid_upload"
    default_message = N_("The file was not accepted.")


class Unauthorized(ChartboxError):
    status, code, default_message = 401, "unauthorized", N_("A valid API token is required.")


class Forbidden(ChartboxError):
    status, code, default_message = 403, "forbidden", N_("You may not do that.")


class NotFound(ChartboxError):
    status, code, default_message = 404, "not_found", N_("Not found.")


class Conflict(ChartboxError):
    status, code, default_message = 409, "conflict", N_("The request conflicts with the current state.")


class NotAcceptable(ChartboxError):
    status, code, default_message = 406, "not_acceptable", N_("The response cannot be given in the format asked for.")


class UnsupportedMediaType(ChartboxError):
    status, code = 415, "unsupported_media_type"
    default_message = N_("The request body is not in a format accepted here.")


class TooLarge(ChartboxError):
    status, code, default_message = 413, "too_large", N_("The file is too large.")


class RequestTimeout(ChartboxError):
    """The request body stopped arriving (or arrived far too slowly): the connection is freed."""

    status, code = 408, "request_timeout"
    default_message = N_("The upload arrived too slowly and was stopped; check the connection and try again.")


class TooManyRequests(ChartboxError):
    status, code, default_message = 429, "too_many_requests", N_("Too many attempts; try again later.")
    retry_after = 60  # seconds, sent as Retry-After


class ServiceUnavailable(ChartboxError):
    """A backing service is down (not a bug): answered 503 with Retry-After, so clients retry."""

    status, code, default_message = 503, "unavailable", N_("File storage is unavailable; try again shortly.")
    retry_after = 30  # seconds, sent as Retry-After


class ServerBusy(ServiceUnavailable):
    """Every decoder or renderer slot of this process stayed busy for the whole wait."""

    default_message = N_("The server is busy checking other files; try again in a few seconds.")
    retry_after = 5


class CannotReceive(ServiceUnavailable):
    """The temp folder uploads are received into cannot be written (missing, full, not a folder)."""

    default_message = N_("The server cannot receive files right now; try again shortly.")


class DamagedFile(ChartboxError):
    """The stored bytes do not match the file's recorded sha256 (or size): 503, never a 500
    and never the wrong bytes; an administrator must restore the file (`files check --deep`)."""

    status, code = 503, "damaged_file"
    default_message = N_("The stored copy of this file is damaged; an administrator has been told.")
    retry_after = 3600  # seconds: retrying soon will not help


class DatabaseUnavailable(ServiceUnavailable):
    """The database refused a read or write for a reason that is not a bug (see database_unavailable)."""

    default_message = N_("The database is unavailable right now; try again shortly.")


#: A renderer turns (status, code, message, extra) into a response in a door's own shape.
Renderer = Callable[[ChartboxError], Response]

_HTTP_CODES = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 408: RequestTimeout,
    409: Conflict, 413: TooLarge, 429: TooManyRequests,
}


def from_http(exc: HTTPException) -> ChartboxError:
    """Map a Werkzeug HTTP error (routing, 405, 413 from a parser limit, 429 from a rate limit)
    into the tree."""
    cls = _HTTP_CODES.get(exc.code or 500)
    err: ChartboxError
    if exc.code == 413:
        err = TooLarge(_too_large_message(exc))
    elif exc.code == 429:  # Flask-Limiter's RateLimitExceeded: its message, and when to come back
        from app.ratelimits import retry_after

        err = TooManyRequests(exc.description if getattr(exc, "limit", None) is not None else None)
        err.retry_after = retry_after(exc)
    elif exc.code == 405:
        err = ChartboxError(gettext("This method is not allowed here."))
        err.status, err.code = 405, "method_not_allowed"
    elif cls is not None:
        err = cls(exc.description if cls is BadRequest else None)
    else:
        err = ChartboxError(exc.description)
        err.status = exc.code or 500
    return err


def too_many_files(limit: int) -> str:
    """What a request with more files than UPLOAD_MAX_FILES_PER_REQUEST is told."""
    return gettext("At most %(limit)s files can be uploaded at once.", limit=limit)


#: Where in Werkzeug's parsers each 413 is raised: (file name, function) -> which limit.
_413_ORIGINS = {
    ("multipart.py", "next_event"): "parts",  # MAX_FORM_PARTS
    ("multipart.py", "receive_data"): "field",  # MAX_FORM_MEMORY_SIZE, within one chunk
    ("formparser.py", "parse"): "field",  # MAX_FORM_MEMORY_SIZE, across chunks
    ("wsgi.py", "get_input_stream"): "body",  # MAX_CONTENT_LENGTH, from Content-Length
    ("wsgi.py", "on_exhausted"): "body",  # MAX_CONTENT_LENGTH, a chunked body read past it
}


def _too_large_message(exc: HTTPException) -> str:
    """Say which limit a Werkzeug 413 hit; it raises one bare RequestEntityTooLarge for all.

    Told apart by the frame that raised it (tests/test_413.py pins each one, so a Werkzeug
    that moves them fails there), then by the request's declared length.
    """
    config = current_app.config
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    origin = None
    if tb is not None:
        code = tb.tb_frame.f_code
        origin = _413_ORIGINS.get((os.path.basename(code.co_filename), code.co_name))
    if origin == "parts":
        return gettext("%(files)s (A form may have at most %(parts)s parts.)",
                       files=too_many_files(config["UPLOAD_MAX_FILES_PER_REQUEST"]),
                       parts=f"{request.max_form_parts:,}")
    if origin == "field":
        return gettext("A form field is larger than the %(max)s-byte limit for text fields.",
                       max=f"{request.max_form_memory_size:,}")
    body_limit = request.max_content_length
    if body_limit is not None and (origin == "body" or (request.content_length or 0) > body_limit):
        return gettext("The request is larger than the %(max)s-byte limit for one request "
                       "(and each file has a %(file_max)s-byte limit).", max=f"{body_limit:,}",
                       file_max=f"{config['UPLOAD_MAX_BYTES']:,}")
    return gettext("The request is too large.")


#: SQLite's generic result code: a missing table or column, a syntax error — a bug, not an outage.
_SQLITE_ERROR = 1
#: SQLSTATEs of unavailability that PostgreSQL drivers do not raise as OperationalError:
#: a write on a read-only server (a standby promoted late, a failover in progress).
_UNAVAILABLE_SQLSTATES = frozenset({"25006"})


def _nul_in_text(exc: BaseException) -> bool:
    """psycopg's refusal of a NUL character in a text parameter (raised before the query is sent)."""
    from sqlalchemy.exc import DataError

    return isinstance(exc, DataError) and "NUL (0x00)" in str(exc.orig)


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "unavailable, try again" rather than a bug.

    Yes: a lost or refused connection, a read-only, locked, busy, full or failing database, a
    lock or statement timeout, a deadlock or serialization failure, an exhausted pool. No:
    IntegrityError, ProgrammingError and SQLite's generic error (no such table, bad SQL) —
    those stay 500s that fail the test or page the developer.
    """
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):  # every pooled connection is busy
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:  # the driver reported a disconnect
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None and (sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF != _SQLITE_ERROR  # READONLY, BUSY, LOCKED, IOERR, FULL, CANTOPEN…
    return True


def _renderer_for_path(path: str) -> Renderer:
    """The renderer of the door serving `path` (the API registers its chooser), else the pages'."""
    choose = current_app.extensions.get("chartbox_error_renderer")
    return choose(path) if choose is not None else render_page_error


def render_page_error(err: ChartboxError) -> Response:
    """Pages: an error page in the app's style (JSON for clients that ask only for JSON)."""
    from app.http import wants_json  # app.http needs this module first

    if wants_json():
        resp = jsonify(code=err.status, message=err.message)
    else:
        try:
            resp = current_app.make_response(
                render_template("error.html", error=err, status=err.status)
            )
        except Exception:  # a broken template must not hide the original error
            current_app.logger.exception("error page failed to render")
            resp = current_app.make_response((err.message, err.status))
            resp.mimetype = "text/plain"
    resp.status_code = err.status
    return resp


def _render(err: ChartboxError) -> Response:
    """`err` in the shape of the door serving this request; a 503 says when to come back."""
    resp = _renderer_for_path(request.path)(err)
    if err.status in (429, 503):
        # A class's retry_after, or an instance's own (a rate limit knows when its window ends).
        resp.headers.setdefault("Retry-After", str(getattr(err, "retry_after", ServiceUnavailable.retry_after)))
    return resp


def register_error_handlers(app: Flask) -> None:
    """Install the app-level handlers."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from app.services import transaction  # needs this module first
    from app.storage import StorageError

    @app.errorhandler(ChartboxError)
    def handle_chartbox_error(err: ChartboxError):
        if isinstance(err, ServiceUnavailable):
            transaction.abandon()  # an outage commits nothing of the request
        elif err.audit is not None:
            _audit_refusal(err)
        return _render(err)

    def _audit_refusal(err: ChartboxError) -> None:
        """A refusal on a real object (or a rejected link) is recorded — in a transaction of
        its own, since nothing else of the request may commit."""
        from flask import g
        from flask_login import current_user

        from app.models import Action, Channel
        from app.services import audit

        info = err.audit or {}
        transaction.abandon()
        actor = g.get("actor")
        if actor is None and current_user and current_user.is_authenticated:
            actor = current_user._get_current_object()
        origin = g.get("origin") or audit.Origin.of(request, Channel.WEB)
        try:
            audit.record(Action.REFUSED, origin, actor=actor, file=info.get("file"), outcome="refused",
                         status=err.status, attempted=info.get("action"), reason=info.get("reason"),
                         path=request.path[:200])
            transaction.commit()
        except Exception:  # the refusal is answered even if its record fails
            app.logger.exception("could not audit a refusal on %s %s", request.method, request.path)
            transaction.abandon()

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        if exc.code and exc.code < 400:  # redirects raised as exceptions (e.g. routing slashes)
            return exc
        err = from_http(exc)
        resp = _render(err)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp

    @app.errorhandler(StorageError)
    def handle_storage_error(exc: StorageError):
        # An outage of the disk or object store, not a bug: say so, and let the client retry.
        app.logger.error("storage failure on %s %s: %s", request.method, request.path, exc)
        transaction.abandon()  # nothing of a failed request commits
        return _render(ServiceUnavailable())

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    def handle_database_error(exc: Exception):
        if _nul_in_text(exc):
            # PostgreSQL text cannot hold NUL, so its driver refuses the statement (SQLite stores
            # it). A value with one can be neither stored nor match a stored one: the client's error.
            transaction.abandon()
            return _render(BadRequest(gettext("The request contains a NUL character, which is not accepted.")))
        if not database_unavailable(exc):
            return handle_unexpected(exc)  # IntegrityError, ProgrammingError: bugs stay 500s
        # Unreachable, read-only, locked or full: an outage, not a bug. Roll back (which
        # removes the request's new blobs) before rendering: the error page reads the session.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        app.logger.error("database unavailable on %s %s: %s: %s", request.method, request.path,
                         type(exc).__name__, reason)
        transaction.abandon()
        return _render(DatabaseUnavailable())

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if app.config.get("TESTING") and app.config.get("PROPAGATE_UNEXPECTED", True):
            raise exc  # a hidden 500 must fail the test that caused it
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _renderer_for_path(request.path)(ChartboxError())
