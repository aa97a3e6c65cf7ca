"""Signed view links, `/files/view/<id>?auth_code=…&time=…[&size=WxH][&preview=N]`: no token needed."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import wrap_file

from app.api.dialect import Dialect
from app.errors import ChartboxError
from app.models import Channel
from app.services.viewing import Download, open_view

bp = Blueprint("links", __name__)
_SEND_BUFFER = 64 * 1024  # bytes per chunk handed to the server (the stream hashes each one)

# Served files can never run script or be framed by another site; PDFs keep Chrome's
# viewer, which refuses to start in a sandboxed document.
_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def render_error(err: ChartboxError) -> Response:
    """`{"code": <status>, "message": …}`: the shape of the files API the links belong to."""
    resp = jsonify(code=err.status, message=err.message)
    resp.status_code = err.status
    return resp


# Authorised by each link's own signature, so no credential.
DIALECT = Dialect(name="signed view links", channel=Channel.LINK, blueprints=(bp,),
                  prefixes=("/files/view", "/api_v3/files/view"), render_error=render_error)


@bp.get("/api_v3/files/view/<file_id>")
@bp.get("/files/view/<file_id>")  # registered first, so url_for builds this one
def view_file(file_id: str):
    """The file's bytes (or a PNG: images with `size`, PDF pages with `preview`), Range/ETag aware."""
    download = open_view(file_id, request.args.get("auth_code"), request.args.get("time"),
                         request.args.get("size"), g.origin,
                         preview=request.args.get("preview"), by=request.args.get("by"))
    return send_download(download, attachment=request.args.get("download") == "1")


def content_disposition(name: str, attachment: bool) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    kind = "attachment" if attachment else "inline"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def send_download(download: Download, attachment: bool = False) -> BaseResponse:
    """Stream a Download with conditional and Range support and the hardening headers.

    The stream checks its own sha256 (viewing.VerifiedStream): if it raises while the server
    sends the body, the server aborts the response, so the client sees a short transfer.
    """
    resp = current_app.response_class(
        wrap_file(request.environ, download.stream, buffer_size=_SEND_BUFFER), mimetype=download.media_type,
        direct_passthrough=True,
    )
    resp.content_length = download.size
    resp.last_modified = download.last_modified
    resp.set_etag(download.etag)
    resp.headers["Content-Disposition"] = content_disposition(download.name, attachment)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    csp = _CSP if download.media_type == "application/pdf" else _CSP + "; sandbox"
    resp.headers["Content-Security-Policy"] = csp
    try:
        return resp.make_conditional(request, accept_ranges=True, complete_length=download.size)
    except HTTPException:  # 416: the response is dropped, so close its file here
        resp.close()
        raise
