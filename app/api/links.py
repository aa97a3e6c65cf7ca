"""Signed view links, `/files/view/<id>?auth_code=…&time=…[&size=WxH][&preview=N][&format=jpeg]`: no token needed."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import wrap_file

from app.api.dialect import Dialect
from app.errors import ChartboxError
from app.models import Channel
from app.services.delivery import CACHE_CONTROL, Delivery, content_disposition
from app.services.export import Export
from app.services.viewing import Download, open_view

bp = Blueprint("links", __name__)
# Bytes per chunk handed to the server (the stream hashes each one): 1 MiB, not 64 KiB, halves
# a large download's CPU (BENCHMARKS.md). Never more than VERIFY_BEFORE_SEND_BYTES: a streamed
# file is larger than that, so its first chunk cannot complete the hash — a mismatch then always
# shows after the headers went out, as a transfer cut short (viewing.py), never in their place.
_SEND_BUFFER = 1024 * 1024

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
    """The file's bytes (or a PNG: images with `size`, PDF pages with `preview`; a JPEG: HEIC
    photos with `format=jpeg`), Range/ETag aware."""
    attachment = request.args.get("download") == "1"
    download = open_view(file_id, request.args.get("auth_code"), request.args.get("time"),
                         request.args.get("size"), g.origin,
                         preview=request.args.get("preview"), by=request.args.get("by"),
                         offload=can_offload(), attachment=attachment, as_format=request.args.get("format"))
    return send_download(download, attachment=attachment)


def can_offload() -> bool:
    """Whether nginx or S3 may send this request's bytes. If-Match and If-Unmodified-Since are
    judged by the sender's own validators (nginx's file mtime, S3's ETag), not the file's sha256,
    so such requests are answered here as when streaming (clients almost never send them)."""
    return "If-Match" not in request.headers and "If-Unmodified-Since" not in request.headers


def send_download(download: Download, attachment: bool = False) -> BaseResponse:
    """Send a Download with conditional and Range support and the hardening headers.

    Streamed, the stream checks its own sha256 (viewing.VerifiedStream): if it raises while the
    server sends the body, the server aborts the response, so the client sees a short transfer.
    Offloaded (delivery.py), nginx or S3 sends the bytes; see _send_x_accel and _send_presigned.
    """
    if download.offload is not None and download.offload.via is Delivery.X_ACCEL:
        return _send_x_accel(download, attachment)
    if download.offload is not None and download.offload.via is Delivery.PRESIGNED:
        return _send_presigned(download, attachment)
    resp = current_app.response_class(
        wrap_file(request.environ, download.stream,
                  buffer_size=min(_SEND_BUFFER, current_app.config["VERIFY_BEFORE_SEND_BYTES"])),
        mimetype=download.media_type,
        direct_passthrough=True,
    )
    resp.content_length = download.size
    _describe(resp, download, attachment)
    try:
        return resp.make_conditional(request, accept_ranges=True, complete_length=download.size)
    except HTTPException:  # 416: the response is dropped, so close its file here
        resp.close()
        raise


def _describe(resp: BaseResponse, download: Download, attachment: bool) -> None:
    """The headers every answer about the file's bytes carries, whoever sends them."""
    resp.last_modified = download.last_modified
    resp.set_etag(download.etag)
    resp.headers["Content-Disposition"] = content_disposition(download.name, attachment)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = CACHE_CONTROL
    resp.headers["Referrer-Policy"] = "no-referrer"
    csp = _CSP if download.media_type == "application/pdf" else _CSP + "; sandbox"
    resp.headers["Content-Security-Policy"] = csp


def _send_x_accel(download: Download, attachment: bool) -> BaseResponse:
    """No body, `X-Accel-Redirect`: nginx sends the file and answers Range itself (so no 206
    here). If-None-Match / If-Modified-Since are answered here (304): only the app knows the
    sha256 ETag. nginx keeps Content-Type, Content-Disposition and Cache-Control from this
    answer; the rest it drops, and its internal location adds them back (deploy/nginx-chartbox.conf)."""
    assert download.offload is not None
    resp = current_app.response_class(b"", mimetype=download.media_type)
    _describe(resp, download, attachment)
    resp.make_conditional(request)
    if resp.status_code == 200:
        resp.headers["X-Accel-Redirect"] = download.offload.target
    return resp


def _send_presigned(download: Download, attachment: bool) -> BaseResponse:
    """303 See Other to the presigned GET: the link's answer is at another, one-off URL that the
    client fetches with GET (303 says so for any method; a presigned URL is signed for GET only).
    A HEAD, or a conditional request the app can answer itself (304), gets the file's headers
    from here instead, with no redirect."""
    assert download.offload is not None
    described = current_app.response_class(b"", mimetype=download.media_type)
    _describe(described, download, attachment)
    described.make_conditional(request)
    if described.status_code != 200:
        return described
    if request.method == "HEAD":
        described.content_length = download.size  # what the GET would send; no body either way
        return described
    resp = current_app.response_class(status=303)
    resp.headers["Location"] = download.offload.target
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the bucket never learns the page or the link
    return resp


def send_archive(archive: Export) -> BaseResponse:
    """An export's ZIP (services/export.py), from any door: streamed, its exact length, a
    download, never cached. Not conditional: each export is made (and audited) afresh."""
    resp = current_app.response_class(archive.chunks, mimetype="application/zip", direct_passthrough=True)
    resp.content_length = archive.size
    resp.headers["Content-Disposition"] = content_disposition(archive.name, attachment=True)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
