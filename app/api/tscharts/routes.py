"""tscharts routes: `Authorization: Token <token>`, integer image ids, `{"detail": …}` errors.

Images travel as base64 inside JSON; they are ordinary patient documents underneath
(service.py), so every other door sees them too.
"""
from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, g, jsonify, request

from app.api import params
from app.api.dialect import authorization
from app.api.tscharts import service
from app.api.tscharts.models import ChartImage, ImageType
from app.api.tscharts.service import ImageQuery
from app.errors import BadRequest, ChartboxError, Forbidden
from app.models import StoredFile
from app.services import accounts

bp = Blueprint("tscharts", __name__, url_prefix="/tscharts/v1")
TOKEN = authorization("Token")


def render_error(err: ChartboxError) -> Response:
    message = err.message
    limit = request.max_content_length
    if err.status == 413 and limit and (request.content_length or 0) > limit:
        message = f"The request body is larger than the {limit:,}-byte limit."  # not the file limit
    resp = jsonify(detail=message)
    resp.status_code = err.status
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = "Token"
    return resp


def _id(value, name: str) -> int | None:
    """An id given as an integer or a numeric string (tscharts coerces with int()); 0 is none."""
    return params.integer(value, name) or None


def _image_type(value) -> ImageType:
    try:
        return ImageType(value)
    except ValueError:
        raise BadRequest(
            f"type must be one of {', '.join(t.value for t in ImageType)} (case-sensitive)."
        ) from None


def image_json(row: StoredFile, tags: ChartImage, data: bytes) -> dict:
    """An image in tscharts' shape: the stored bytes as base64 in `data`."""
    return {
        "id": row.id,
        "patient": row.patient_id,
        "clinic": tags.clinic,
        "station": tags.station,
        "type": tags.image_type,
        "data": base64.b64encode(data).decode("ascii"),
    }


@bp.post("/login/")
def login():
    """Exchange a username and password for a new API token (`{"token", "id"}`)."""
    body = params.json_object()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise BadRequest("Send a username and a password.")
    signed_in = accounts.issue_login_token(username, password, request.remote_addr, "tscharts login", g.origin)
    if signed_in is None:
        raise Forbidden("The username or password is not correct.")
    user, token = signed_in
    return {"token": token, "id": user.id}


@bp.post("/logout/")
def logout():
    """Revoke the token this request was made with. tschartslib's Logout sends none (tscharts'
    own logout needs none); a token that is sent must be valid (401 otherwise)."""
    token = TOKEN(request)
    if token is not None:
        accounts.resolve_token(token)
        accounts.revoke_presented_token(token, g.origin)
    return {}


@bp.post("/image/")
def create_image():
    """Store a base64 PNG/JPEG as a typed image of a patient: `{"id": n}`."""
    body = params.json_object()
    image_type = _image_type(body.get("type"))
    if "patient" not in body:
        raise BadRequest("patient is required.")
    patient = _id(body["patient"], "patient")
    # clinic and station are optional, but when present must be ids (null is refused, as tscharts does).
    clinic = _id(body["clinic"], "clinic") if "clinic" in body else None
    station = _id(body["station"], "station") if "station" in body else None
    data = body.get("data")
    if not isinstance(data, str) or not data:
        raise BadRequest("data (the base64 image) is required.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("data must be base64 (standard alphabet, padded).") from None
    row = service.upload_image(g.actor, g.origin, raw, patient or 0, image_type, clinic, station)
    return {"id": row.id}


@bp.get("/image/")
def search_images():
    """Ids of matching images (404 when none), or the newest one itself with `newest=true`."""
    args = request.args
    newest = params.flag(args.get("newest"), strict=True, name="newest")
    newest_first = params.flag(args.get("sort"), strict=True, name="sort")
    query = ImageQuery(
        patient_id=_id(args["patient"], "patient") if "patient" in args else None,
        clinic=_id(args["clinic"], "clinic") if "clinic" in args else None,
        station=_id(args["station"], "station") if "station" in args else None,
        image_type=_image_type(args["type"]) if "type" in args else None,
        newest_first=newest_first,
    )
    if newest:
        return image_json(*service.newest_image(g.actor, g.origin, query))
    return jsonify(service.find_image_ids(g.actor, g.origin, query))


@bp.get("/image/<int:image_id>/")
def get_image(image_id: int):
    """One image with its base64 `data`."""
    return image_json(*service.get_image(g.actor, g.origin, image_id))


@bp.delete("/image/<int:image_id>/")
def delete_image(image_id: int):
    """Delete an image: `{}`; a second time, 404."""
    service.delete_image(g.actor, g.origin, image_id)
    return {}
