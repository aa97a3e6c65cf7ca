"""One exception tree for the whole app, and the app-level handlers that render it.

Services raise ChartboxError subclasses; each API dialect declares a renderer for its URL
prefixes (app/api/dialect.py) so the same error comes out in that door's vendor shape. The
handlers sit at app level because 404/405/413 can happen before a blueprint is chosen.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


class ChartboxError(Exception):
    """A failure with an HTTP status and a stable machine code."""

    status = 500
    code = "internal_error"
    default_message = "Something went wrong on our side."

    def __init__(self, message: str | None = None, **extra):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra


class BadRequest(ChartboxError):
    status, code, default_message = 400, "bad_request", "The request is not valid."


class InvalidUpload(BadRequest):
    code = "invalid_upload"
    default_message = "The file was not accepted."


class Unauthorized(ChartboxError):
    status, code, default_message = 401, "unauthorized", "A valid API token is required."


class Forbidden(ChartboxError):
    status, code, default_message = 403, "forbidden", "You may not do that."


class NotFound(ChartboxError):
    status, code, default_message = 404, "not_found", "Not found."


class Conflict(ChartboxError):
    status, code, default_message = 409, "conflict", "The request conflicts with the current state."


class TooLarge(ChartboxError):
    status, code, default_message = 413, "too_large", "The file is too large."


class TooManyRequests(ChartboxError):
    status, code, default_message = 429, "too_many_requests", "Too many attempts; try again later."


class ServiceUnavailable(ChartboxError):
    status, code, default_message = 503, "unavailable", "File storage is unavailable; try again shortly."


#: A renderer turns (status, code, message, extra) into a response in a door's own shape.
Renderer = Callable[[ChartboxError], Response]

_HTTP_CODES = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: TooLarge, 429: TooManyRequests,
}


def from_http(exc: HTTPException) -> ChartboxError:
    """Map a Werkzeug HTTP error (routing, 405, 413 from the body limit) into the tree."""
    cls = _HTTP_CODES.get(exc.code or 500)
    err: ChartboxError
    if exc.code == 413:
        limit = current_app.config["UPLOAD_MAX_BYTES"]
        err = TooLarge(f"The file is larger than the {limit:,}-byte limit.")
    elif exc.code == 405:
        err = ChartboxError("This method is not allowed here.")
        err.status, err.code = 405, "method_not_allowed"
    elif cls is not None:
        err = cls(exc.description if cls is BadRequest else None)
    else:
        err = ChartboxError(exc.description)
        err.status = exc.code or 500
    return err


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


def register_error_handlers(app: Flask) -> None:
    """Install the app-level handlers."""

    @app.errorhandler(ChartboxError)
    def handle_chartbox_error(err: ChartboxError):
        return _renderer_for_path(request.path)(err)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        if exc.code and exc.code < 400:  # redirects raised as exceptions (e.g. routing slashes)
            return exc
        err = from_http(exc)
        resp = _renderer_for_path(request.path)(err)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp

    from app.storage import StorageError

    @app.errorhandler(StorageError)
    def handle_storage_error(exc: StorageError):
        # An outage of the disk or object store, not a bug: say so, and let the client retry.
        app.logger.error("storage failure on %s %s: %s", request.method, request.path, exc)
        resp = _renderer_for_path(request.path)(ServiceUnavailable())
        resp.headers["Retry-After"] = "30"
        return resp

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if app.config.get("TESTING") and app.config.get("PROPAGATE_UNEXPECTED", True):
            raise exc  # a hidden 500 must fail the test that caused it
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _renderer_for_path(request.path)(ChartboxError())
